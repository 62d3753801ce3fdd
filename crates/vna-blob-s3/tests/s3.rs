//! The S3 backend against a real S3 server with Object Lock (scripts/s3-throwaway.sh starts a
//! single-node Ceph RGW; scripts/test.sh exports its address). Every case gets a bucket of its
//! own, created with Object Lock (which turns versioning on).
//!
//! Without `VNA_TEST_S3_ENDPOINT` the cases fail under `CI=true` and are skipped loudly
//! otherwise.

mod support;

use aws_sdk_s3::types::ObjectLockRetentionMode;
use bytes::Bytes;
use std::time::{Duration, SystemTime};
use vna_blob::{read_all, BlobError, BlobRef, BlobStore, DefaultRetention, LockMode};
use vna_blob_s3::{S3BlobStore, S3Settings};

use vna_blob_s3::testing::TestS3 as Env;

fn env() -> Option<Env> {
    Env::from_env()
}

fn settings(env: &Env, bucket: &str) -> S3Settings {
    env.settings(bucket)
}

/// A fresh bucket with Object Lock, and a store on it built from `tune`d settings.
pub async fn store_with(tune: impl FnOnce(&mut S3Settings)) -> Option<(S3BlobStore, Env)> {
    let env = env()?;
    let bucket = env.new_bucket().await;
    let mut s = settings(&env, &bucket);
    tune(&mut s);
    let store = S3BlobStore::new(s).await.expect("store");
    Some((store, env))
}

async fn store() -> Option<(S3BlobStore, Env)> {
    store_with(|_| ()).await
}

mod conformance {
    async fn make() -> (super::S3BlobStore, super::Env) {
        match super::store().await {
            Some(s) => s,
            None => panic!("no S3 server"),
        }
    }

    /// Runs a case only when a server is configured (skipping loudly otherwise; failing
    /// under CI=true, inside `env()`).
    macro_rules! s3_cases {
        ($($case:ident),*) => {
            $(
                #[tokio::test]
                async fn $case() {
                    if super::env().is_none() {
                        return;
                    }
                    let (store, _env) = make().await;
                    vna_blob::conformance::$case(&store).await;
                }
            )*
        };
    }

    s3_cases!(
        round_trip,
        ranged_reads,
        keys_are_fresh_and_opaque,
        aborted_and_missing_objects,
        delete_removes,
        empty_object,
        large_object,
        legal_hold_blocks_delete,
        retention_blocks_delete_and_shortening,
        expired_retention_allows_delete
    );
}

async fn put(store: &S3BlobStore, data: Vec<u8>) -> vna_blob::StoredBlob {
    let sha = vna_blob::conformance::sha256_hex(&data);
    let mut w = store.create().await.expect("create");
    for c in data.chunks(1 << 20) {
        w.write(Bytes::copy_from_slice(c)).await.expect("write");
    }
    w.commit(&sha).await.expect("commit")
}

async fn multipart_uploads(store: &S3BlobStore) -> usize {
    let out = store.client().list_multipart_uploads().bucket(&store.settings().bucket).send().await.expect("list uploads");
    out.uploads().len()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 249) as u8).collect()
}

#[tokio::test]
async fn default_retention_locks_single_put_and_multipart_objects() {
    let Some((store, _env)) = store_with(|s| s.default_retention = Some(DefaultRetention { mode: LockMode::Compliance, days: 1 })).await
    else {
        return;
    };
    let small = put(&store, pattern(1000)).await;
    let large = put(&store, pattern(2 * vna_blob_s3::MIN_PART_SIZE + 12345)).await;
    assert_eq!(multipart_uploads(&store).await, 0, "no multipart upload left behind");
    for blob in [&small, &large] {
        assert!(blob.version_id.is_some(), "versioned bucket gives a version id");
        let p = store.protection(blob.into()).await.expect("protection");
        let r = p.retention.expect("retention applied at write time");
        assert_eq!(r.mode, LockMode::Compliance);
        assert!(r.retain_until > SystemTime::now() + Duration::from_secs(23 * 3600));
        // Refused through the archive's backend...
        assert!(matches!(store.delete(blob.into()).await, Err(BlobError::Locked { .. })));
        // ...and directly, with the archive's own credentials, even asking for a bypass.
        let direct = store
            .client()
            .delete_object()
            .bucket(&store.settings().bucket)
            .key(store.object_key(&blob.key).expect("key"))
            .set_version_id(blob.version_id.clone())
            .bypass_governance_retention(true)
            .send()
            .await;
        assert!(direct.is_err(), "a COMPLIANCE-locked version cannot be deleted directly");
        let shorten = store
            .client()
            .put_object_retention()
            .bucket(&store.settings().bucket)
            .key(store.object_key(&blob.key).expect("key"))
            .set_version_id(blob.version_id.clone())
            .bypass_governance_retention(true)
            .retention(
                aws_sdk_s3::types::ObjectLockRetention::builder()
                    .mode(ObjectLockRetentionMode::Compliance)
                    .retain_until_date(aws_sdk_s3::primitives::DateTime::from(SystemTime::now() + Duration::from_secs(60)))
                    .build(),
            )
            .send()
            .await;
        assert!(shorten.is_err(), "a COMPLIANCE retention cannot be shortened directly");
        assert_eq!(
            read_all(&store, blob.into(), Some(vna_blob::Range { offset: 10, length: 20 })).await.expect("read"),
            &pattern(1000)[10..30]
        );
    }
}

#[tokio::test]
async fn sha256_checksums_and_a_storage_class_are_accepted() {
    // Ceph RGW 16 accepts x-amz-checksum-sha256 without checking it: this proves the requests
    // are well-formed and the data intact, not that the store verified the checksum.
    let Some((store, _env)) = store_with(|s| {
        s.checksum_sha256 = true;
        s.storage_class = Some("STANDARD".to_owned());
    })
    .await
    else {
        return;
    };
    for len in [1000, 2 * vna_blob_s3::MIN_PART_SIZE + 7] {
        let data = pattern(len);
        let blob = put(&store, data.clone()).await;
        assert_eq!(read_all(&store, (&blob).into(), None).await.expect("read"), data, "{len} bytes");
    }
    assert_eq!(multipart_uploads(&store).await, 0);
}

#[tokio::test]
async fn sha256_is_recorded_with_the_object() {
    let Some((store, _env)) = store().await else { return };
    for len in [100, vna_blob_s3::MIN_PART_SIZE + 1] {
        let data = pattern(len);
        let blob = put(&store, data.clone()).await;
        let recorded = store.recorded_sha256((&blob).into()).await.expect("tags");
        assert_eq!(recorded.as_deref(), Some(vna_blob::conformance::sha256_hex(&data).as_str()), "{len} bytes");
    }
}

#[tokio::test]
async fn delete_without_version_leaves_a_marker_and_the_version() {
    let Some((store, _env)) = store().await else { return };
    let blob = put(&store, b"kept as a version".to_vec()).await;
    store.delete(BlobRef::current(&blob.key)).await.expect("delete current");
    assert!(matches!(store.size(BlobRef::current(&blob.key)).await, Err(BlobError::NotFound { .. })));
    assert_eq!(read_all(&store, (&blob).into(), None).await.expect("version still there"), b"kept as a version");
    store.delete((&blob).into()).await.expect("destroy the version");
    assert!(matches!(store.size((&blob).into()).await, Err(BlobError::NotFound { .. })));
}

#[tokio::test]
async fn aborted_and_dropped_multipart_uploads_leave_nothing() {
    let Some((store, _env)) = store().await else { return };
    let mut w = store.create().await.expect("create");
    w.write(Bytes::from(pattern(vna_blob_s3::MIN_PART_SIZE + 10))).await.expect("write");
    assert_eq!(multipart_uploads(&store).await, 1, "the upload is under way");
    w.abort().await;
    assert_eq!(multipart_uploads(&store).await, 0, "abort removes the upload");

    let mut w = store.create().await.expect("create");
    w.write(Bytes::from(pattern(vna_blob_s3::MIN_PART_SIZE + 10))).await.expect("write");
    drop(w);
    let mut left = 1;
    for _ in 0..100 {
        left = multipart_uploads(&store).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "a dropped writer aborts its upload");
    let listed = store.client().list_object_versions().bucket(&store.settings().bucket).send().await.expect("list");
    assert!(listed.versions().is_empty(), "no object was created");
}

#[tokio::test]
async fn corrupted_transfer_is_refused_and_nothing_is_stored() {
    let Some(env) = env() else { return };
    let proxy = support::proxy::start(&env.endpoint).await;
    let bucket = env.new_bucket().await;
    let admin = S3BlobStore::new(settings(&env, &bucket)).await.expect("client");
    let mut s = settings(&env, &bucket);
    s.endpoint = Some(proxy.url.clone());
    s.max_attempts = 1;
    let store = S3BlobStore::new(s).await.expect("store");
    proxy.faults.corrupt_put.store(true, std::sync::atomic::Ordering::SeqCst);
    let data = pattern(50_000);
    let mut w = store.create().await.expect("create");
    w.write(Bytes::from(data.clone())).await.expect("write");
    let err = w.commit(&vna_blob::conformance::sha256_hex(&data)).await.expect_err("a corrupted PUT must fail");
    assert!(matches!(err, BlobError::Corrupted { .. }), "{err:?}");
    let listed = admin.client().list_object_versions().bucket(&bucket).send().await.expect("list");
    assert!(listed.versions().is_empty(), "nothing stored");
    // The direct proof that the store checks Content-MD5: a PUT whose MD5 does not match.
    let wrong = admin
        .client()
        .put_object()
        .bucket(&bucket)
        .key("vna/0123456789abcdef0123456789abcdef")
        .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"some bytes"))
        .send()
        .await;
    assert!(wrong.is_err(), "a wrong Content-MD5 is refused");
}

#[tokio::test]
async fn unreachable_store_is_a_transient_error_and_recovers() {
    let Some(env) = env() else { return };
    let proxy = support::proxy::start(&env.endpoint).await;
    let bucket = env.new_bucket().await;

    let mut s = settings(&env, &bucket);
    s.endpoint = Some(proxy.url.clone());
    s.max_attempts = 2;
    s.connect_timeout = Duration::from_secs(1);
    s.request_timeout = Duration::from_secs(3);
    let store = S3BlobStore::new(s).await.expect("store");
    let blob = put(&store, b"before the outage".to_vec()).await;
    proxy.faults.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut w = store.create().await.expect("create");
    w.write(Bytes::from_static(b"during")).await.expect("buffered");
    let err = w.commit(&vna_blob::conformance::sha256_hex(b"during")).await.expect_err("store down");
    assert!(err.is_transient(), "{err:?}");
    let err = store.read((&blob).into(), None).await.err().expect("read while down");
    assert!(err.is_transient(), "{err:?}");
    proxy.faults.down.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(read_all(&store, (&blob).into(), None).await.expect("read after"), b"before the outage");
    put(&store, b"after the outage".to_vec()).await;
}

#[tokio::test]
async fn requests_in_flight_are_capped() {
    let Some((store, _env)) = store_with(|s| {
        s.max_in_flight = 1;
        s.queue_timeout = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let blob = put(&store, pattern(3 << 20)).await;
    // A streaming GET holds its slot until its body is read or dropped.
    let open = store.read((&blob).into(), None).await.expect("first read");
    let err = store.size((&blob).into()).await.expect_err("no free slot");
    assert!(matches!(err, BlobError::Unavailable { .. }) && err.is_transient(), "{err:?}");
    drop(open);
    assert_eq!(store.size((&blob).into()).await.expect("slot free again"), 3 << 20);
}

#[tokio::test]
async fn storage_check_reports_each_item() {
    let Some((store, env)) = store_with(|s| s.require_object_lock = true).await else { return };
    let items = store.check().await;
    let names: Vec<_> = items.iter().map(|i| (i.what, i.ok)).collect();
    assert!(items.iter().all(|i| i.ok), "{items:?}");
    for what in ["bucket reachable", "versioning", "object lock", "write probe", "incomplete uploads", "multipart uploads"] {
        assert!(names.iter().any(|(w, _)| *w == what), "{what} missing from {names:?}");
    }
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
    };
    let rule = LifecycleRule::builder()
        .id("abort-uploads")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build())
        .build()
        .expect("rule");
    store
        .client()
        .put_bucket_lifecycle_configuration()
        .bucket(&store.settings().bucket)
        .lifecycle_configuration(BucketLifecycleConfiguration::builder().rules(rule).build().expect("lifecycle"))
        .send()
        .await
        .expect("put lifecycle");
    let items = store.check().await;
    let uploads = items.iter().find(|i| i.what == "incomplete uploads").expect("item");
    assert!(uploads.detail.contains("after 1 days"), "{uploads:?}");
    // A bucket that does not exist, and wrong credentials, are reported, not panicked on.
    let missing = S3BlobStore::new(settings(&env, "vna-no-such-bucket")).await.expect("store");
    let items = missing.check().await;
    assert!(!items[0].ok, "{items:?}");
    let mut s = settings(&env, &store.settings().bucket);
    s.credentials = Some(("WRONG".into(), "WRONG".into()));
    let items = S3BlobStore::new(s).await.expect("store").check().await;
    assert!(!items[0].ok && items[0].detail.contains("403"), "{items:?}");
}
