//! C-MOVE and C-GET from the real `vna serve` with real clients: dcmtk's movescu (destination:
//! dcmtk's storescp) at STUDY, SERIES and IMAGE level and getscu, files compared byte for byte;
//! an unknown destination; destinations that are down, refuse the SOP class or fail one
//! instance (our toolkit as a scriptable storage SCP); C-CANCEL in the middle of a C-MOVE.
//!
//! What "byte-identical" means here: storescp and getscu run with `+B` (bit preserving), so
//! the data set they write is exactly the one received; the meta group in front of it is
//! theirs (their implementation class UID, our AE title as Source AE), so the comparison is
//! of the data set after the meta group, against the Part 10 files storescu sent. That the
//! archive stores what storescu sent byte for byte is tests/tests/dimse.rs's business.

use async_trait::async_trait;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;
use vna_dicom::charset::Charset;
use vna_dicom::write::{data_set, Items};
use vna_dicom::{tags, ts, VR};
use vna_dimse::{
    AssociationInfo, Client, DataStream, Handler, ProposedContext, Reply, ScpConfig, Status, StoreRequest, SubOperations, Timeouts,
};
use vna_e2e::binary::Server;
use vna_e2e::dimse::{data_set_of, dcmtk, run_dcmtk, EXPLICIT_LE};
use vna_e2e::fixtures::{ct_study, Ct, CT_IMAGE_STORAGE};

const STUDY_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// dcmtk's storescp, bit preserving, accepting every transfer syntax; killed when dropped.
struct StoreScp {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl StoreScp {
    fn start(ae: &str, dir: &Path) -> StoreScp {
        std::fs::create_dir_all(dir).expect("storescp output dir");
        let port = free_port();
        let child = Process::new(dcmtk("storescp"))
            .args(["--aetitle", ae, "+xa", "+B", "-od"])
            .arg(dir)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting storescp");
        let deadline = std::time::Instant::now() + vna_e2e::DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "storescp did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        StoreScp { child, port, dir: dir.to_path_buf() }
    }

    /// Files received so far (path and bytes); the directory is emptied.
    fn take(&self) -> Vec<(PathBuf, Vec<u8>)> {
        read_all(&self.dir, true)
    }
}

impl Drop for StoreScp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A storage SCP on our toolkit: refuses CT at association time (`accept_ct` false), fails
/// the instance `fail_uid` with 0xA700, and lets a store through only once `gate` has a
/// permit (when given).
struct Destination {
    accept_ct: bool,
    fail_uid: Option<String>,
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

#[async_trait]
impl Handler for Destination {
    fn accepts(&self, abstract_syntax: &str) -> bool {
        abstract_syntax == vna_dimse::VERIFICATION || (self.accept_ct && abstract_syntax == CT_IMAGE_STORAGE)
    }

    async fn c_store(&self, _info: &AssociationInfo, request: StoreRequest<'_>, data: &mut DataStream<'_>) -> Reply {
        while let Ok(Some(_)) = data.next().await {}
        if let Some(gate) = &self.gate {
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
        }
        if self.fail_uid.as_deref() == Some(request.sop_instance_uid) {
            return Reply::status(Status::OUT_OF_RESOURCES);
        }
        Reply::status(Status::SUCCESS)
    }
}

async fn start_destination(ae: &str, handler: Destination) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding a destination");
    let port = listener.local_addr().expect("destination address").port();
    let t = Some(Duration::from_secs(30));
    let config = ScpConfig {
        policy: vna_dimse::AcceptorPolicy {
            ae_title: ae.into(),
            allow_any_calling_ae: true,
            known_calling_aes: vec![],
            max_pdu_length: 65536,
        },
        max_associations: 4,
        timeouts: Timeouts { read: t, idle: t, write: t },
        shutdown_grace: Duration::from_secs(1),
        tls: None,
    };
    tokio::spawn(vna_dimse::serve(listener, config, Arc::new(handler), std::future::pending::<()>()));
    port
}

/// Starts the server with these known AEs (title, port on 127.0.0.1) and stores `study` with
/// storescu.
fn start_with(dir: &Path, destinations: &[(&str, u16)], study: &[Ct]) -> Server {
    let mut toml = String::from("[dimse]\nallow_any_calling_ae = true\n");
    for (ae, port) in destinations {
        toml.push_str(&format!("\n[[dimse.known_aes]]\nae_title = \"{ae}\"\nhost = \"127.0.0.1\"\nport = {port}\n"));
    }
    let config = dir.join("vna.toml");
    std::fs::write(&config, toml).expect("writing the config");
    let server = Server::start(&dir.join("data"), &[("VNA_CONFIG", config.to_str().expect("utf-8 path"))]);
    let files: Vec<PathBuf> = study
        .iter()
        .enumerate()
        .map(|(i, ct)| {
            let p = dir.join(format!("ct{i:03}.dcm"));
            std::fs::write(&p, ct.to_bytes()).expect("writing a fixture");
            p
        })
        .collect();
    let out = run_dcmtk("storescu", &["-aec", "VNA"], &server.dimse, &files);
    assert!(out.status.success(), "storescu failed: {}", String::from_utf8_lossy(&out.stderr));
    server
}

fn read_all(dir: &Path, remove: bool) -> Vec<(PathBuf, Vec<u8>)> {
    vna_e2e::files_under(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).expect("reading a received file");
            if remove {
                std::fs::remove_file(&f).expect("removing a received file");
            }
            (f, bytes)
        })
        .collect()
}

/// Checks that `files` are exactly the instances `expected`, data sets byte for byte.
async fn assert_received(files: &[(PathBuf, Vec<u8>)], expected: &[&Ct]) {
    let names: Vec<_> = files.iter().map(|(p, _)| p).collect();
    assert_eq!(files.len(), expected.len(), "received {names:?}");
    for (f, bytes) in files {
        let meta = vna_dimse::read_meta(&mut &bytes[..]).await.expect("a Part 10 file");
        let ct =
            expected.iter().find(|c| c.sop_uid == meta.sop_instance).unwrap_or_else(|| panic!("unexpected instance in {}", f.display()));
        assert_eq!(meta.transfer_syntax, EXPLICIT_LE);
        assert!(data_set_of(bytes) == data_set_of(&ct.to_bytes()), "the data set of {} changed on the way", f.display());
    }
}

fn movescu(server: &Server, destination: &str, keys: &[&str]) -> (bool, String) {
    let mut args = vec!["-S", "-v", "-aet", "MOVER", "-aec", "VNA", "-aem", destination];
    keys.iter().for_each(|k| args.extend(["-k", k]));
    let out = run_dcmtk("movescu", &args, &server.dimse, &[]);
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn identifier(level: &str, keys: &[(vna_dicom::Tag, &str)]) -> Vec<u8> {
    let mut items = Items::new().str(tags::QUERY_RETRIEVE_LEVEL, VR::CS, level);
    for (tag, value) in keys {
        items = items.str(*tag, VR::UI, value);
    }
    data_set(&items, ts::EXPLICIT_VR_LITTLE_ENDIAN)
}

async fn our_move(server: &Server, destination: &str, id: &[u8]) -> vna_dimse::RetrieveOutcome {
    let mut client =
        Client::connect(&server.dimse, "MOVER", "VNA", &[ProposedContext::new(STUDY_ROOT_MOVE, &[EXPLICIT_LE])]).await.expect("associate");
    let out = client.move_(STUDY_ROOT_MOVE, destination, id).await.expect("C-MOVE");
    client.release().await.expect("release");
    out
}

fn failed_list(out: &vna_dimse::RetrieveOutcome) -> Vec<String> {
    let Some(id) = &out.identifier else { return Vec::new() };
    let parsed = vna_dicom::parse::parse_dataset_bytes(id, EXPLICIT_LE, Default::default()).expect("a parseable identifier");
    let list = parsed.dataset.text(tags::FAILED_SOP_INSTANCE_UID_LIST, &Charset::default()).unwrap_or_default();
    let mut uids: Vec<String> = list.trim_end_matches(['\0', ' ']).split('\\').map(str::to_owned).collect();
    uids.sort();
    uids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn movescu_and_getscu_deliver_byte_identical_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let study = ct_study(2, 3);
    let scp = StoreScp::start("DEST", &dir.path().join("received"));
    let server = start_with(dir.path(), &[("DEST", scp.port)], &study);
    let study_uid = format!("StudyInstanceUID={}", study[0].study_uid);

    let (ok, log) = movescu(&server, "DEST", &["QueryRetrieveLevel=STUDY", &study_uid]);
    assert!(ok && log.contains("Received Final Move Response (Success)"), "{log}");
    assert_received(&scp.take(), &study.iter().collect::<Vec<_>>()).await;

    let second: Vec<&Ct> = study.iter().filter(|c| c.series_number == 2).collect();
    let series_uid = format!("SeriesInstanceUID={}", second[0].series_uid);
    let (ok, log) = movescu(&server, "DEST", &["QueryRetrieveLevel=SERIES", &study_uid, &series_uid]);
    assert!(ok && log.contains("Received Final Move Response (Success)"), "{log}");
    assert_eq!(log.matches("Received Move Response").count(), 3, "one pending response per sub-operation: {log}");
    assert_received(&scp.take(), &second).await;

    let sop_uid = format!("SOPInstanceUID={}", second[1].sop_uid);
    let (ok, log) = movescu(&server, "DEST", &["QueryRetrieveLevel=IMAGE", &study_uid, &series_uid, &sop_uid]);
    assert!(ok && log.contains("Received Final Move Response (Success)"), "{log}");
    assert_received(&scp.take(), &[second[1]]).await;

    // The counts of the final response, as our SCU reads them.
    let out = our_move(&server, "DEST", &identifier("STUDY", &[(tags::STUDY_INSTANCE_UID, &study[0].study_uid)])).await;
    assert_eq!(out.status(), Status::SUCCESS);
    assert_eq!(out.counts(), SubOperations { remaining: None, completed: 6, failed: 0, warning: 0 });
    assert_eq!(out.pending.last().and_then(|p| p.remaining), Some(0));
    assert_received(&scp.take(), &study.iter().collect::<Vec<_>>()).await;

    // A destination that is not a known AE: 0xA801, nothing sent.
    let (ok, log) = movescu(&server, "NOWHERE", &["QueryRetrieveLevel=STUDY", &study_uid]);
    assert!(!ok && log.contains("MoveDestinationUnknown"), "{log}");
    let out = our_move(&server, "NOWHERE", &identifier("STUDY", &[(tags::STUDY_INSTANCE_UID, &study[0].study_uid)])).await;
    assert_eq!(out.status(), Status::MOVE_DESTINATION_UNKNOWN);
    assert!(scp.take().is_empty());

    // C-GET: the same files come back on getscu's own association.
    let got = dir.path().join("got");
    std::fs::create_dir_all(&got).expect("getscu output dir");
    let got_arg = got.to_str().expect("utf-8 path");
    let out = run_dcmtk(
        "getscu",
        &["-S", "-v", "-aet", "GETTER", "-aec", "VNA", "+B", "-od", got_arg, "-k", "QueryRetrieveLevel=STUDY", "-k", &study_uid],
        &server.dimse,
        &[],
    );
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && log.contains("Number of Completed Suboperations : 6"), "{log}");
    assert!(log.contains("Number of Failed Suboperations    : 0"), "{log}");
    assert_received(&read_all(&got, false), &study.iter().collect::<Vec<_>>()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sub_operations_are_reported_and_the_server_stays_fine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let study = ct_study(2, 3);
    let failing = study[4].sop_uid.clone();
    let picky = start_destination("PICKY", Destination { accept_ct: true, fail_uid: Some(failing.clone()), gate: None }).await;
    let no_ct = start_destination("NOCT", Destination { accept_ct: false, fail_uid: None, gate: None }).await;
    let down = free_port();
    let server = start_with(dir.path(), &[("PICKY", picky), ("NOCT", no_ct), ("DOWN", down)], &study);
    let whole = identifier("STUDY", &[(tags::STUDY_INSTANCE_UID, &study[0].study_uid)]);
    let mut all: Vec<String> = study.iter().map(|c| c.sop_uid.clone()).collect();
    all.sort();

    // Nobody listens: no sub-operation can be performed (0xA702), every instance listed.
    let out = our_move(&server, "DOWN", &whole).await;
    assert_eq!(out.status(), Status::OUT_OF_RESOURCES_SUBOPERATIONS);
    assert_eq!(out.counts(), SubOperations { remaining: None, completed: 0, failed: 6, warning: 0 });
    assert_eq!(failed_list(&out), all);
    let (ok, log) = movescu(&server, "DOWN", &["QueryRetrieveLevel=STUDY", &format!("StudyInstanceUID={}", study[0].study_uid)]);
    assert!(!ok && log.contains("Received Final Move Response (Refused: OutOfResourcesSubOperations)"), "{log}");

    // The destination accepts no context for CT: the same.
    let out = our_move(&server, "NOCT", &whole).await;
    assert_eq!(out.status(), Status::OUT_OF_RESOURCES_SUBOPERATIONS);
    assert_eq!(failed_list(&out), all);

    // One instance fails at the destination: 0xB000, the others complete.
    let out = our_move(&server, "PICKY", &whole).await;
    assert_eq!(out.status(), Status::SUBOPERATIONS_WITH_FAILURES);
    assert_eq!(out.counts(), SubOperations { remaining: None, completed: 5, failed: 1, warning: 0 });
    assert_eq!(failed_list(&out), vec![failing]);

    // The server is fine afterwards: echo, and a clean move of the first series.
    let mut client = Client::connect(&server.dimse, "MOVER", "VNA", &vna_e2e::dimse::ct_contexts()).await.expect("associate");
    assert_eq!(client.echo().await.expect("echo"), Status::SUCCESS);
    client.release().await.expect("release");
    let first = identifier("SERIES", &[(tags::STUDY_INSTANCE_UID, &study[0].study_uid), (tags::SERIES_INSTANCE_UID, &study[0].series_uid)]);
    let out = our_move(&server, "PICKY", &first).await;
    assert_eq!((out.status(), out.counts().completed), (Status::SUCCESS, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_cancel_stops_a_c_move_between_sub_operations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let study = ct_study(1, 6);
    // The destination lets one store through, then one more each time the test says so.
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    let slow = start_destination("SLOW", Destination { accept_ct: true, fail_uid: None, gate: Some(gate.clone()) }).await;
    let server = start_with(dir.path(), &[("SLOW", slow)], &study);
    let opener = tokio::spawn(async move {
        // After the first pending response the C-CANCEL goes out; later stores are let
        // through slowly so that it is read between two sub-operations.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            gate.add_permits(1);
        }
    });
    let mut client =
        Client::connect(&server.dimse, "MOVER", "VNA", &[ProposedContext::new(STUDY_ROOT_MOVE, &[EXPLICIT_LE])]).await.expect("associate");
    let id = identifier("STUDY", &[(tags::STUDY_INSTANCE_UID, &study[0].study_uid)]);
    let out = client.move_with(STUDY_ROOT_MOVE, "SLOW", &id, |_| false).await.expect("C-MOVE");
    assert_eq!(out.status(), Status::CANCEL);
    let c = out.counts();
    let remaining = c.remaining.expect("a cancel response carries the remaining count");
    assert!(remaining >= 1, "{c:?}");
    assert_eq!(c.completed + c.failed + c.warning + remaining, 6, "{c:?}");
    client.release().await.expect("release");
    opener.abort();
}
