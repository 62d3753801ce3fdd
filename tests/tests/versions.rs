//! Version policies end to end: a changed object arriving with an existing SOP Instance UID is
//! replaced, kept aside, or rejected as configured, and every stored version stays retrievable
//! through the admin API.

use serde_json::Value;
use vna_archive::ArchiveConfig;
use vna_catalog::VersionPolicy;
use vna_e2e::fixtures::Ct;
use vna_e2e::http;
use vna_e2e::inproc::{self, FaultyFixture};

async fn server(policy: VersionPolicy) -> (FaultyFixture, inproc::InProcess) {
    let fx = FaultyFixture::new().await;
    let archive = fx.archive(fx.sqlite.clone(), ArchiveConfig { version_policy: policy, ..ArchiveConfig::default() });
    (fx, inproc::serve(archive).await)
}

fn admin(base: &str) -> String {
    format!("{}/admin", base.trim_end_matches("/dicom-web"))
}

async fn versions(client: &reqwest::Client, base: &str, sop: &str) -> Vec<Value> {
    let resp = client.get(format!("{}/instances/{sop}/versions", admin(base))).send().await.expect("versions");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json::<Vec<Value>>().await.expect("versions JSON")
}

async fn version_bytes(client: &reqwest::Client, base: &str, sop: &str, n: i64) -> Vec<u8> {
    let resp = client.get(format!("{}/instances/{sop}/versions/{n}", admin(base))).send().await.expect("version bytes");
    assert_eq!(resp.status().as_u16(), 200);
    resp.bytes().await.expect("body").to_vec()
}

/// The same SOP instance with different pixels (a corrected object).
fn original_and_correction() -> (Ct, Vec<u8>, Vec<u8>) {
    let ct = Ct::new_study();
    let v1 = ct.to_bytes();
    let v2 = ct.clone().with_size(32, 32).to_bytes();
    assert_ne!(v1, v2);
    (ct, v1, v2)
}

#[tokio::test]
async fn replace_makes_the_new_object_current_and_keeps_the_old_one() {
    let (_fx, server) = server(VersionPolicy::Replace).await;
    let client = http::client();
    let (ct, v1, v2) = original_and_correction();
    assert_eq!(http::stow(&client, &server.base, std::slice::from_ref(&v1)).await.status().as_u16(), 200);
    assert_eq!(http::stow(&client, &server.base, std::slice::from_ref(&v2)).await.status().as_u16(), 200);
    let url = http::instance_url(&server.base, &ct.study_uid, &ct.series_uid, &ct.sop_uid);
    assert_eq!(http::retrieve_instance(&client, &url).await, v2);
    let list = versions(&client, &server.base, &ct.sop_uid).await;
    assert_eq!(list.len(), 2);
    assert_eq!((list[0]["version"].as_i64(), list[0]["current"].as_bool()), (Some(1), Some(false)));
    assert_eq!((list[1]["version"].as_i64(), list[1]["current"].as_bool()), (Some(2), Some(true)));
    assert_eq!(version_bytes(&client, &server.base, &ct.sop_uid, 1).await, v1);
    assert_eq!(version_bytes(&client, &server.base, &ct.sop_uid, 2).await, v2);
    let studies = http::qido_studies(&client, &server.base, &format!("StudyInstanceUID={}", ct.study_uid)).await;
    assert_eq!(http::first_value(&studies[0], "00201208").and_then(Value::as_i64), Some(1), "one current instance");
}

#[tokio::test]
async fn keep_both_records_the_new_object_and_keeps_the_first_current() {
    let (_fx, server) = server(VersionPolicy::KeepBoth).await;
    let client = http::client();
    let (ct, v1, v2) = original_and_correction();
    assert_eq!(http::stow(&client, &server.base, std::slice::from_ref(&v1)).await.status().as_u16(), 200);
    assert_eq!(http::stow(&client, &server.base, std::slice::from_ref(&v2)).await.status().as_u16(), 200);
    let url = http::instance_url(&server.base, &ct.study_uid, &ct.series_uid, &ct.sop_uid);
    assert_eq!(http::retrieve_instance(&client, &url).await, v1);
    let list = versions(&client, &server.base, &ct.sop_uid).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|v| v["current"] == Value::Bool(true)).count(), 1);
    let current = list.iter().find(|v| v["current"] == Value::Bool(true)).and_then(|v| v["version"].as_i64());
    let other =
        list.iter().find(|v| v["current"] == Value::Bool(false)).and_then(|v| v["version"].as_i64()).expect("a non-current version");
    assert_eq!(version_bytes(&client, &server.base, &ct.sop_uid, current.expect("current")).await, v1);
    assert_eq!(version_bytes(&client, &server.base, &ct.sop_uid, other).await, v2);
}

#[tokio::test]
async fn reject_refuses_the_changed_object_and_changes_nothing() {
    let (fx, server) = server(VersionPolicy::Reject).await;
    let client = http::client();
    let (ct, v1, v2) = original_and_correction();
    assert_eq!(http::stow(&client, &server.base, std::slice::from_ref(&v1)).await.status().as_u16(), 200);
    let blobs_before = fx.blob_files().len();
    assert_eq!(http::stow(&client, &server.base, std::slice::from_ref(&v2)).await.status().as_u16(), 409);
    // The identical object is still accepted: idempotent, not a conflict.
    assert_eq!(http::stow(&client, &server.base, std::slice::from_ref(&v1)).await.status().as_u16(), 200);
    assert_eq!(versions(&client, &server.base, &ct.sop_uid).await.len(), 1);
    assert_eq!(fx.blob_files().len(), blobs_before, "refused and duplicate objects leave no blob behind");
    let url = http::instance_url(&server.base, &ct.study_uid, &ct.series_uid, &ct.sop_uid);
    assert_eq!(http::retrieve_instance(&client, &url).await, v1);
}

#[tokio::test]
async fn versions_of_an_unknown_or_invalid_instance() {
    let (_fx, server) = server(VersionPolicy::Replace).await;
    let client = http::client();
    let unknown = client.get(format!("{}/instances/1.2.3.4.5/versions", admin(&server.base))).send().await.expect("request");
    assert_eq!(unknown.status().as_u16(), 404);
    let invalid = client.get(format!("{}/instances/1.2.abc/versions", admin(&server.base))).send().await.expect("request");
    assert_eq!(invalid.status().as_u16(), 400);
}
