//! The real `vna serve` as a DIMSE peer: dcmtk's echoscu and storescu (several parallel
//! associations), our own SCU for the cases dcmtk cannot produce (a data set that does not
//! match its command, an abort in the middle of a data set), the association cap, the AE title
//! checks, and DICOMweb reading back what arrived over DIMSE.

use std::path::{Path, PathBuf};
use vna_dimse::{Client, Command, DimseError, Status};
use vna_e2e::binary::Server;
use vna_e2e::dimse::{ct_contexts, data_set_of, run_dcmtk, EXPLICIT_LE};
use vna_e2e::fixtures::{ct_study, Ct, CT_IMAGE_STORAGE};
use vna_e2e::{http, inproc, wait_until};

fn write_files(dir: &Path, cts: &[Ct]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("creating the fixture dir");
    cts.iter()
        .enumerate()
        .map(|(i, ct)| {
            let p = dir.join(format!("ct{i:03}.dcm"));
            std::fs::write(&p, ct.to_bytes()).expect("writing a fixture");
            p
        })
        .collect()
}

async fn instances_in_study(base: &str, study: &str) -> Vec<serde_json::Value> {
    let resp = http::client()
        .get(format!("{base}/studies/{study}/instances"))
        .header("accept", "application/dicom+json")
        .send()
        .await
        .expect("QIDO-RS");
    match resp.status().as_u16() {
        204 | 404 => Vec::new(),
        200 => resp.json::<Vec<serde_json::Value>>().await.expect("QIDO-RS JSON"),
        s => panic!("QIDO-RS answered {s}"),
    }
}

fn stored_objects(data: &Path) -> usize {
    inproc::blob_files(&data.join("blobs")).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoscu_and_the_called_ae_title() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), &[]);
    let ok = run_dcmtk("echoscu", &["-aec", "VNA"], &server.dimse, &[]);
    assert!(ok.status.success(), "echoscu failed: {}", String::from_utf8_lossy(&ok.stderr));
    let wrong = run_dcmtk("echoscu", &["-aec", "NOT-VNA"], &server.dimse, &[]);
    assert!(!wrong.status.success(), "echoscu to a wrong called AE title succeeded");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("Called AE Title Not Recognized"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    // Our SCU sees the same rejection, permanent.
    let err = Client::connect(&server.dimse, "SCU", "NOT-VNA", &ct_contexts()).await.err().expect("rejected");
    assert!(matches!(err, DimseError::Rejected(ref rj) if rj.result == dicom_ul_result_permanent()), "{err:?}");
}

fn dicom_ul_result_permanent() -> vna_dimse::dicom_ul::pdu::AssociationRJResult {
    vna_dimse::dicom_ul::pdu::AssociationRJResult::Permanent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_storescu_then_qido_and_wado_return_the_same_data_sets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), &[]);
    let study = ct_study(4, 5);
    let files = write_files(&dir.path().join("in"), &study);
    // Four storescu processes at once, five files each: four parallel associations.
    let handles: Vec<_> = files
        .chunks(5)
        .map(|chunk| {
            let (addr, chunk) = (server.dimse.clone(), chunk.to_vec());
            std::thread::spawn(move || run_dcmtk("storescu", &["-aec", "VNA", "-R"], &addr, &chunk))
        })
        .collect();
    for h in handles {
        let out = h.join().expect("storescu thread");
        assert!(out.status.success(), "storescu failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let found = instances_in_study(&server.base, &study[0].study_uid).await;
    assert_eq!(found.len(), 20, "QIDO-RS finds every instance stored over DIMSE");
    let client = http::client();
    for ct in &study {
        let url = http::instance_url(&server.base, &ct.study_uid, &ct.series_uid, &ct.sop_uid);
        let stored = http::retrieve_instance(&client, &url).await;
        let sent = ct.to_bytes();
        assert_eq!(data_set_of(&stored), data_set_of(&sent), "the data set of {} changed on the way", ct.sop_uid);
    }
    // Sending the same files again is a no-op that still succeeds.
    let again = run_dcmtk("storescu", &["-aec", "VNA", "-R"], &server.dimse, &files[..3]);
    assert!(again.status.success(), "re-sending duplicates failed: {}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(instances_in_study(&server.base, &study[0].study_uid).await.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_ae_table_when_any_calling_ae_is_not_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("vna.toml");
    std::fs::write(
        &config,
        "[dimse]\nallow_any_calling_ae = false\n\n[[dimse.known_aes]]\nae_title = \"MODALITY\"\nhost = \"127.0.0.1\"\nport = 104\n\n\
         [[dimse.known_aes]]\nae_title = \"VIEWER\"\nhost = \"127.0.0.1\"\nport = 105\ncan_store = false\n",
    )
    .expect("writing the config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let server = Server::start(&dir.path().join("data"), &[("VNA_CONFIG", &config)]);
    let stranger = run_dcmtk("echoscu", &["-aet", "STRANGER", "-aec", "VNA"], &server.dimse, &[]);
    assert!(!stranger.status.success(), "an unknown calling AE was accepted");
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("Calling AE Title Not Recognized"),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );
    let known = run_dcmtk("echoscu", &["-aet", "MODALITY", "-aec", "VNA"], &server.dimse, &[]);
    assert!(known.status.success(), "a known calling AE was rejected: {}", String::from_utf8_lossy(&known.stderr));
    // VIEWER may associate but not store: PS3.7 Annex C "Refused: Not Authorized".
    let ct = Ct::new_study();
    let bytes = ct.to_bytes();
    let mut viewer = Client::connect(&server.dimse, "VIEWER", "VNA", &ct_contexts()).await.expect("VIEWER associates");
    let rsp = viewer.store(CT_IMAGE_STORAGE, &ct.sop_uid, EXPLICIT_LE, data_set_of(&bytes)).await.expect("C-STORE");
    assert_eq!(rsp.status, Some(Status::NOT_AUTHORIZED));
    viewer.release().await.expect("release");
    assert!(instances_in_study(&server.base, &ct.study_uid).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_association_cap_is_rejected_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("data"), &[("VNA__DIMSE__MAX_ASSOCIATIONS", "1")]);
    let mut holder = Client::connect(&server.dimse, "HOLDER", "VNA", &ct_contexts()).await.expect("first association");
    let started = std::time::Instant::now();
    let err = Client::connect(&server.dimse, "SECOND", "VNA", &ct_contexts()).await.err().expect("second association rejected");
    let DimseError::Rejected(rj) = err else { panic!("expected A-ASSOCIATE-RJ, got {err:?}") };
    assert_eq!(rj.result, vna_dimse::dicom_ul::pdu::AssociationRJResult::Transient);
    assert_eq!(
        rj.source,
        vna_dimse::dicom_ul::pdu::AssociationRJSource::ServiceProviderPresentation(
            vna_dimse::dicom_ul::pdu::AssociationRJServiceProviderPresentationReason::LocalLimitExceeded
        )
    );
    let echo = run_dcmtk("echoscu", &["-aec", "VNA"], &server.dimse, &[]);
    assert!(!echo.status.success(), "echoscu got past the association cap");
    // Not a timing assertion: a stalled accept would take the 60 s read timeout.
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "rejection waited for a free slot");
    assert_eq!(holder.echo().await.expect("the held association still works"), Status::SUCCESS);
    holder.release().await.expect("release");
    // The slot comes back once the holder released (the server notices asynchronously).
    let deadline = std::time::Instant::now() + vna_e2e::DEADLINE;
    let later = loop {
        match Client::connect(&server.dimse, "THIRD", "VNA", &ct_contexts()).await {
            Ok(c) => break c,
            Err(e) => assert!(std::time::Instant::now() < deadline, "the slot was not freed: {e:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    later.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_sets_get_failure_statuses_and_store_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let mut client = Client::connect(&server.dimse, "SCU", "VNA", &ct_contexts()).await.expect("associate");
    // Not DICOM at all: PS3.4 Table B.2-1 "Error: cannot understand".
    let garbage = vec![0xFFu8; 3000];
    let rsp = client.store(CT_IMAGE_STORAGE, "1.2.3.4.5", EXPLICIT_LE, &garbage[..]).await.expect("C-STORE");
    assert_eq!(rsp.status.map(|s| s.0 & 0xF000), Some(0xC000), "{rsp:?}");
    assert!(rsp.error_comment.is_some());
    // A valid data set under another SOP Instance UID than the command's: 0xA900.
    let ct = Ct::new_study();
    let bytes = ct.to_bytes();
    let rsp = client.store(CT_IMAGE_STORAGE, "1.2.3.4.6", EXPLICIT_LE, data_set_of(&bytes)).await.expect("C-STORE");
    assert_eq!(rsp.status, Some(Status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS), "{rsp:?}");
    // …and under another SOP class.
    let mr = "1.2.840.10008.5.1.4.1.1.4";
    let mut mr_client =
        Client::connect(&server.dimse, "SCU", "VNA", &[vna_dimse::ProposedContext::new(mr, &[EXPLICIT_LE])]).await.expect("associate");
    let rsp = mr_client.store(mr, &ct.sop_uid, EXPLICIT_LE, data_set_of(&bytes)).await.expect("C-STORE");
    assert_eq!(rsp.status, Some(Status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS), "{rsp:?}");
    mr_client.release().await.expect("release");
    assert!(instances_in_study(&server.base, &ct.study_uid).await.is_empty());
    assert!(http::qido_studies(&http::client(), &server.base, "").await.is_empty());
    wait_until("no object is left in the blob store", || async { stored_objects(&data) == 0 }).await;
    // The same association still stores a good one.
    let rsp = client.store(CT_IMAGE_STORAGE, &ct.sop_uid, EXPLICIT_LE, data_set_of(&bytes)).await.expect("C-STORE");
    assert_eq!(rsp.status, Some(Status::SUCCESS));
    client.release().await.expect("release");
    assert_eq!(instances_in_study(&server.base, &ct.study_uid).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_association_aborted_mid_data_set_stores_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let ct = Ct::new_study().with_size(256, 256);
    let bytes = ct.to_bytes();
    let data_set = data_set_of(&bytes);
    let mut client = Client::connect(&server.dimse, "SCU", "VNA", &ct_contexts()).await.expect("associate");
    let context = client.association().find_context(CT_IMAGE_STORAGE, Some(EXPLICIT_LE)).expect("context").id;
    client.association().send_command(context, &Command::store_rq(1, CT_IMAGE_STORAGE, &ct.sop_uid)).await.expect("command");
    client.association().send_data(context, &data_set[..data_set.len() / 2], false).await.expect("half the data set");
    client.abort().await;
    // A storescu killed in the middle of a transfer: the connection just drops.
    let mut dropped = Client::connect(&server.dimse, "SCU", "VNA", &ct_contexts()).await.expect("associate");
    dropped.association().send_command(context, &Command::store_rq(1, CT_IMAGE_STORAGE, &ct.sop_uid)).await.expect("command");
    dropped.association().send_data(context, &data_set[..1000], false).await.expect("a bit of the data set");
    drop(dropped);
    wait_until("the aborted stores left nothing behind", || async { stored_objects(&data) == 0 }).await;
    assert!(instances_in_study(&server.base, &ct.study_uid).await.is_empty());
    // The server is fine afterwards.
    let mut client = Client::connect(&server.dimse, "SCU", "VNA", &ct_contexts()).await.expect("associate");
    assert_eq!(client.echo().await.expect("echo"), Status::SUCCESS);
    let rsp = client.store(CT_IMAGE_STORAGE, &ct.sop_uid, EXPLICIT_LE, data_set).await.expect("C-STORE");
    assert_eq!(rsp.status, Some(Status::SUCCESS));
    client.release().await.expect("release");
    assert_eq!(instances_in_study(&server.base, &ct.study_uid).await.len(), 1);
    assert_eq!(stored_objects(&data), 1);
}
