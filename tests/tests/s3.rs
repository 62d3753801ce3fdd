//! The archive on S3 (a real Ceph RGW with Object Lock, started by scripts/test.sh): an
//! outage gives 503 and stores nothing, then the archive recovers by itself; legal hold and
//! retention through the admin API, enforced by the store; `vna storage check` and
//! `vna verify` through the binary; a 1 GiB object in and out with bounded server memory.

#[path = "../../crates/vna-blob-s3/tests/support/proxy.rs"]
mod proxy;

use futures::StreamExt;
use sha2::Digest;
use std::sync::atomic::Ordering;
use vna_blob_s3::testing::TestS3;
use vna_config::{Config, RetentionConfig, S3TierConfig, TierConfig};
use vna_e2e::binary::{self, Server};
use vna_e2e::fixtures::Ct;
use vna_e2e::{http, inproc};

/// A tier on `bucket` at `endpoint`, the secret in a file under `dir`.
fn tier(s3: &TestS3, endpoint: &str, bucket: &str, dir: &std::path::Path) -> S3TierConfig {
    let secret = dir.join("s3-secret");
    std::fs::write(&secret, &s3.secret_key).expect("writing the secret file");
    S3TierConfig {
        endpoint: endpoint.to_owned(),
        region: s3.region.clone(),
        bucket: bucket.to_owned(),
        prefix: "vna/".into(),
        access_key_id: s3.access_key.clone(),
        secret_access_key_file: secret.display().to_string(),
        object_lock: true,
        part_size_mib: 5,
        connect_timeout_seconds: 1,
        request_timeout_seconds: 5,
        max_attempts: 2,
        ..S3TierConfig::default()
    }
}

fn config_on(dir: &std::path::Path, t: S3TierConfig) -> Config {
    let mut c = Config { data_dir: dir.join("data"), ..Config::default() };
    c.storage.tiers.insert("s3".into(), TierConfig::S3(Box::new(t)));
    c.storage.default_tier = "s3".into();
    c
}

/// The same tier as `VNA__…` variables for the binary.
fn env_of(t: &S3TierConfig) -> Vec<(String, String)> {
    let p = "VNA__STORAGE__TIERS__S3__";
    let mut v = vec![
        ("VNA__STORAGE__DEFAULT_TIER".to_owned(), "s3".to_owned()),
        (format!("{p}KIND"), "s3".to_owned()),
        (format!("{p}ENDPOINT"), t.endpoint.clone()),
        (format!("{p}REGION"), t.region.clone()),
        (format!("{p}BUCKET"), t.bucket.clone()),
        (format!("{p}PREFIX"), t.prefix.clone()),
        (format!("{p}ACCESS_KEY_ID"), t.access_key_id.clone()),
        (format!("{p}SECRET_ACCESS_KEY_FILE"), t.secret_access_key_file.clone()),
        (format!("{p}OBJECT_LOCK"), t.object_lock.to_string()),
        (format!("{p}PART_SIZE_MIB"), t.part_size_mib.to_string()),
    ];
    if let Some(r) = t.retention {
        let mode = match r.mode {
            vna_config::LockModeConfig::Compliance => "COMPLIANCE",
            vna_config::LockModeConfig::Governance => "GOVERNANCE",
        };
        v.push((format!("{p}RETENTION"), format!("{{ mode = \"{mode}\", days = {} }}", r.days)));
    }
    v
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

async fn client_for(s3: &TestS3, bucket: &str) -> vna_blob_s3::S3BlobStore {
    vna_blob_s3::S3BlobStore::new(s3.settings(bucket)).await.expect("S3 client")
}

async fn instance_count(base: &str, study: &str) -> usize {
    let r = http::client().get(format!("{base}/studies/{study}/instances")).send().await.expect("QIDO-RS");
    match r.status().as_u16() {
        200 => r.json::<Vec<serde_json::Value>>().await.expect("json").len(),
        204 => 0,
        s => panic!("QIDO-RS answered {s}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_fails_stow_and_c_store_cleanly_stores_nothing_then_the_archive_recovers() {
    use vna_dimse::{Client, Status};
    use vna_e2e::dimse::{ct_contexts, data_set_of, EXPLICIT_LE};
    use vna_e2e::fixtures::CT_IMAGE_STORAGE;
    let Some(s3) = TestS3::from_env() else { return };
    let proxy = proxy::start(&s3.endpoint).await;
    let bucket = s3.new_bucket().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = env_of(&tier(&s3, &proxy.url, &bucket, dir.path()));
    let server = Server::start(&dir.path().join("data"), &pairs(&env));
    let client = http::client();

    let before = Ct::new_study();
    let resp = http::stow(&client, &server.base, &[before.to_bytes()]).await;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap_or_default());

    proxy.faults.down.store(true, Ordering::SeqCst);
    let during = before.next_instance();
    let resp = http::stow(&client, &server.base, &[during.to_bytes()]).await;
    assert_eq!(resp.status().as_u16(), 503, "STOW while S3 is down");
    assert!(resp.headers().get(reqwest::header::RETRY_AFTER).is_some(), "503 without Retry-After");
    let by_dimse = during.next_instance();
    let bytes = by_dimse.to_bytes();
    let mut scu = Client::connect(&server.dimse, "SCU", "VNA", &ct_contexts()).await.expect("associate");
    let rsp = scu.store(CT_IMAGE_STORAGE, &by_dimse.sop_uid, EXPLICIT_LE, data_set_of(&bytes)).await.expect("C-STORE");
    assert_eq!(rsp.status, Some(Status::OUT_OF_RESOURCES), "C-STORE while S3 is down: a failure status (PS3.4 B.2.3 A7xx)");
    assert_eq!(instance_count(&server.base, &before.study_uid).await, 1, "nothing acknowledged, nothing catalogued");
    let url = http::instance_url(&server.base, &before.study_uid, &before.series_uid, &before.sop_uid);
    let resp = client
        .get(&url)
        .header("Accept", "multipart/related; type=\"application/dicom\"; transfer-syntax=*")
        .send()
        .await
        .expect("WADO-RS");
    assert_eq!(resp.status().as_u16(), 503, "retrieval while S3 is down is a clear error, not a hang");

    proxy.faults.down.store(false, Ordering::SeqCst);
    let resp = http::stow(&client, &server.base, &[during.to_bytes()]).await;
    assert_eq!(resp.status().as_u16(), 200, "STOW after S3 came back: {}", resp.text().await.unwrap_or_default());
    let rsp = scu.store(CT_IMAGE_STORAGE, &by_dimse.sop_uid, EXPLICIT_LE, data_set_of(&bytes)).await.expect("C-STORE");
    assert_eq!(rsp.status, Some(Status::SUCCESS), "C-STORE on the same association after S3 came back");
    scu.release().await.expect("release");
    assert_eq!(http::retrieve_instance(&client, &url).await, before.to_bytes());
    assert_eq!(instance_count(&server.base, &before.study_uid).await, 3);
    let listed = client_for(&s3, &bucket).await.client().list_object_versions().bucket(&bucket).send().await.expect("list");
    assert_eq!(listed.versions().len(), 3, "exactly the three acknowledged objects are in the bucket");
    server.stop();
}

#[tokio::test]
async fn a_hanging_s3_times_out_into_a_retryable_503_and_stores_nothing() {
    let Some(s3) = TestS3::from_env() else { return };
    let proxy = proxy::start(&s3.endpoint).await;
    let bucket = s3.new_bucket().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Attempts of 5 s, two of them (tier()): the STOW answers after about 10 s.
    let config = config_on(dir.path(), tier(&s3, &proxy.url, &bucket, dir.path()));
    let archive = vna::build_archive(&config).await.expect("archive on S3");
    let server = inproc::serve(archive.clone()).await;
    let client = http::client();
    proxy.faults.stall.store(true, Ordering::SeqCst);
    let ct = Ct::new_study();
    let resp = http::stow(&client, &server.base, &[ct.to_bytes()]).await;
    assert_eq!(resp.status().as_u16(), 503, "STOW while S3 hangs");
    assert!(resp.headers().get(reqwest::header::RETRY_AFTER).is_some(), "503 without Retry-After");
    assert_eq!(archive.catalog().count_instances().await.expect("count"), 0);
    proxy.faults.stall.store(false, Ordering::SeqCst);
    let resp = http::stow(&client, &server.base, &[ct.to_bytes()]).await;
    assert_eq!(resp.status().as_u16(), 200, "STOW once S3 answers again: {}", resp.text().await.unwrap_or_default());
    assert_eq!(archive.catalog().count_instances().await.expect("count"), 1);
}

#[tokio::test]
async fn legal_hold_and_retention_through_the_admin_api_are_enforced_by_the_store() {
    let Some(s3) = TestS3::from_env() else { return };
    let bucket = s3.new_bucket().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut t = tier(&s3, &s3.endpoint, &bucket, dir.path());
    t.retention = Some(RetentionConfig { mode: vna_config::LockModeConfig::Governance, days: 1 });
    let archive = vna::build_archive(&config_on(dir.path(), t)).await.expect("archive on S3");
    let server = inproc::serve(archive.clone()).await;
    let admin = server.base.replace("/dicom-web", "/admin");
    let client = http::client();
    let ct = Ct::new_study();
    let resp = http::stow(&client, &server.base, &[ct.to_bytes()]).await;
    assert_eq!(resp.status().as_u16(), 200);

    let protection = |client: reqwest::Client, url: String| async move {
        let r = client.get(url).send().await.expect("GET protection");
        assert_eq!(r.status().as_u16(), 200);
        r.json::<serde_json::Value>().await.expect("json")
    };
    let purl = format!("{admin}/instances/{}/protection", ct.sop_uid);
    let p = protection(client.clone(), purl.clone()).await;
    assert_eq!(p["retention"]["mode"], "GOVERNANCE", "{p}");
    assert_eq!(p["legalHold"], false);
    assert_eq!(p["enforcedBy"], "store");

    let hold = format!("{admin}/instances/{}/legal-hold", ct.sop_uid);
    assert_eq!(client.put(&hold).body("on").send().await.expect("PUT").status().as_u16(), 204);
    assert_eq!(protection(client.clone(), purl.clone()).await["legalHold"], true);
    // Even bypassing GOVERNANCE retention, the store refuses while the hold is on.
    let row = archive
        .catalog()
        .current_instance(&vna_dicom::uid::SopInstanceUid::new(&ct.sop_uid).expect("uid"), &vna_catalog::Visibility::ALL)
        .await
        .expect("row")
        .expect("stored");
    let store = client_for(&s3, &bucket).await;
    let direct = store
        .client()
        .delete_object()
        .bucket(&bucket)
        .key(store.object_key(&row.blob.key).expect("key"))
        .set_version_id(row.blob.version_id.clone())
        .bypass_governance_retention(true)
        .send()
        .await;
    assert!(direct.is_err(), "legal hold must block deletion");
    assert_eq!(client.put(&hold).body("off").send().await.expect("PUT").status().as_u16(), 204);
    assert_eq!(protection(client.clone(), purl).await["legalHold"], false);
    assert_eq!(client.put(&hold).body("maybe").send().await.expect("PUT").status().as_u16(), 400);
    let missing = format!("{admin}/instances/1.2.3.4/protection");
    assert_eq!(client.get(missing).send().await.expect("GET").status().as_u16(), 404);
}

#[test]
fn storage_check_and_verify_through_the_binary() {
    let Some(s3) = TestS3::from_env() else { return };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let bucket = rt.block_on(s3.new_bucket());
    let dir = tempfile::tempdir().expect("temp dir");
    let t = tier(&s3, &s3.endpoint, &bucket, dir.path());
    let env = env_of(&t);
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8");

    let out = binary::run(&["--data-dir", data_arg, "storage", "check"], &pairs(&env));
    let (stdout, stderr) = binary::text(&out);
    assert!(out.status.success(), "storage check failed:\n{stdout}{stderr}");
    for what in ["bucket reachable", "versioning", "object lock", "write probe"] {
        assert!(stdout.lines().any(|l| l.trim_start().starts_with("ok") && l.contains(what)), "no ok line for {what}:\n{stdout}");
    }

    let server = Server::start(&data, &pairs(&env));
    let study = vna_e2e::fixtures::ct_study(1, 3);
    rt.block_on(async {
        let resp = http::stow(&http::client(), &server.base, &study.iter().map(Ct::to_bytes).collect::<Vec<_>>()).await;
        assert_eq!(resp.status().as_u16(), 200);
    });
    server.stop();

    let out = binary::run(&["--data-dir", data_arg, "verify"], &pairs(&env));
    let (stdout, stderr) = binary::text(&out);
    assert!(out.status.success(), "verify failed:\n{stdout}{stderr}");
    assert!(stdout.contains("verified 3 objects") && stdout.contains("3 intact"), "{stdout}");

    // One object version destroyed behind the archive's back (no lock on this tier): found.
    rt.block_on(async {
        let store = client_for(&s3, &bucket).await;
        let listed = store.client().list_object_versions().bucket(&bucket).send().await.expect("list");
        let v = &listed.versions()[0];
        store
            .client()
            .delete_object()
            .bucket(&bucket)
            .key(v.key().expect("key"))
            .set_version_id(v.version_id().map(str::to_owned))
            .send()
            .await
            .expect("delete");
    });
    let out = binary::run(&["--data-dir", data_arg, "verify", "--study", &study[0].study_uid], &pairs(&env));
    let (stdout, _) = binary::text(&out);
    assert_eq!(out.status.code(), Some(1), "verify must fail when an object is missing:\n{stdout}");
    assert!(stdout.contains("1 missing") && stdout.contains("MISSING"), "{stdout}");

    // A bucket that is not there: reported, exit status 1.
    let mut absent = t.clone();
    absent.bucket = "vna-no-such-bucket-here".into();
    let out = binary::run(&["--data-dir", data_arg, "storage", "check"], &pairs(&env_of(&absent)));
    let (stdout, _) = binary::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn verify_finds_an_altered_file_on_the_filesystem_tier() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf-8");
    let server = Server::start(&data, &[]);
    let study = vna_e2e::fixtures::ct_study(1, 2);
    tokio::runtime::Runtime::new().expect("runtime").block_on(async {
        let resp = http::stow(&http::client(), &server.base, &study.iter().map(Ct::to_bytes).collect::<Vec<_>>()).await;
        assert_eq!(resp.status().as_u16(), 200);
    });
    server.stop();
    let out = binary::run(&["--data-dir", data_arg, "verify"], &[]);
    assert!(out.status.success(), "{}", binary::text(&out).0);
    // One byte of a stored object changed: of its file, or (small objects are packed into
    // segments, `vna_blob::pack`) of the first object of the first segment, past its 16-byte header.
    let files = vna_e2e::files_under(&data.join("blobs/objects"));
    let segments: Vec<_> =
        vna_e2e::files_under(&data.join("blobs/packs")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "pack")).collect();
    let (path, at) = match files.first() {
        Some(f) => (f.clone(), 100),
        None => (segments.first().expect("a stored object, as a file or packed").clone(), 116),
    };
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).expect("alter");
    let out = binary::run(&["--data-dir", data_arg, "verify"], &[]);
    let (stdout, _) = binary::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("1 altered") && stdout.contains("ALTERED sha256"), "{stdout}");
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc status");
    let kb =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()).and_then(|n| n.parse::<u64>().ok());
    kb.expect("VmHWM") * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_object_streams_in_and_out_of_s3_with_bounded_server_memory() {
    let Some(s3) = TestS3::from_env() else { return };
    let bucket = s3.new_bucket().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut t = tier(&s3, &s3.endpoint, &bucket, dir.path());
    t.part_size_mib = 16;
    t.request_timeout_seconds = 60;
    let env = env_of(&t);
    let server = Server::start(&dir.path().join("data"), &pairs(&env));

    const FRAME: u64 = 512 * 512 * 2;
    let frames = (1u64 << 30) / FRAME;
    let ct = Ct::new_study();
    let (header, pixel_bytes) = vna_e2e::fixtures::native_multiframe_header(&ct, frames);
    let chunk = 1usize << 20;
    let mut head = http::part_head(true);
    head.extend_from_slice(&header);
    let mut sent = sha2::Sha256::new();
    sent.update(&header);
    let pieces = pixel_bytes / chunk as u64;
    let body = futures::stream::iter(0..pieces + 2).map(move |i| {
        let b: Vec<u8> = if i == 0 {
            head.clone()
        } else if i <= pieces {
            (0..chunk).map(|j| ((j as u64 * 31 + i * 7) % 253) as u8).collect()
        } else {
            http::closing()
        };
        Ok::<_, std::io::Error>(bytes::Bytes::from(b))
    });
    for i in 1..=pieces {
        let b: Vec<u8> = (0..chunk).map(|j| ((j as u64 * 31 + i * 7) % 253) as u8).collect();
        sent.update(&b);
    }
    let sent = hex::encode(sent.finalize());
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(600)).build().expect("client");
    let resp = client
        .post(format!("{}/studies", server.base))
        .header(reqwest::header::CONTENT_TYPE, http::stow_content_type())
        .header(reqwest::header::ACCEPT, "application/dicom+json")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("STOW of 1 GiB");
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap_or_default());
    let after_store = peak_rss(server.pid());

    let wado = format!(
        "{}/wado?requestType=WADO&studyUID={}&seriesUID={}&objectUID={}&contentType=application/dicom",
        server.base, ct.study_uid, ct.series_uid, ct.sop_uid
    );
    let resp = client.get(&wado).send().await.expect("WADO-URI");
    assert_eq!(resp.status().as_u16(), 200);
    let mut got = sha2::Sha256::new();
    let mut size = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("body chunk");
        size += chunk.len() as u64;
        got.update(&chunk);
    }
    assert_eq!(size, header.len() as u64 + pixel_bytes, "retrieved size");
    assert_eq!(hex::encode(got.finalize()), sent, "retrieved bytes differ");
    let after_retrieve = peak_rss(server.pid());
    server.stop();
    eprintln!("server peak RSS: {} MiB after the 1 GiB store, {} MiB after its retrieval", after_store >> 20, after_retrieve >> 20);
    assert!(after_retrieve < 256 << 20, "server peak RSS {} MiB: memory grows with object size", after_retrieve >> 20);
}
