//! The test S3 server as the tests find it: `VNA_TEST_S3_*` variables (scripts/test.sh
//! exports them after scripts/s3-throwaway.sh started a Ceph RGW), and fresh buckets with
//! Object Lock on it. For tests only; nothing in the archive calls this.

use crate::{S3BlobStore, S3Settings};
use std::time::Duration;

/// Where the test S3 server is, and the credentials of its test user.
#[derive(Debug, Clone)]
pub struct TestS3 {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

impl TestS3 {
    /// From the environment. Without `VNA_TEST_S3_ENDPOINT`: panics under `CI=true` (a suite
    /// that cannot run must not pass), else says loudly that it skips and returns `None`.
    pub fn from_env() -> Option<TestS3> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(endpoint) = get("VNA_TEST_S3_ENDPOINT") else {
            let msg = "VNA_TEST_S3_ENDPOINT is not set: S3 tests cannot run (scripts/test.sh starts a Ceph RGW; or `set -a; eval \"$(scripts/s3-throwaway.sh start)\"; set +a`)";
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{msg} [CI=true: failing instead of skipping]");
            }
            eprintln!("SKIPPED LOUDLY: {msg}");
            return None;
        };
        Some(TestS3 {
            endpoint,
            access_key: get("VNA_TEST_S3_ACCESS_KEY").unwrap_or_default(),
            secret_key: get("VNA_TEST_S3_SECRET_KEY").unwrap_or_default(),
            region: get("VNA_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
        })
    }

    /// Settings for `bucket` with small parts (5 MiB) and short timeouts.
    pub fn settings(&self, bucket: &str) -> S3Settings {
        let mut s = S3Settings::new(bucket);
        s.endpoint = Some(self.endpoint.clone());
        s.region = self.region.clone();
        s.credentials = Some((self.access_key.clone(), self.secret_key.clone()));
        s.part_size = crate::MIN_PART_SIZE;
        s.prefix = "vna/".to_owned();
        s.max_attempts = 2;
        s.request_timeout = Duration::from_secs(30);
        s
    }

    /// A new bucket with Object Lock (so versioning too); returns its name.
    pub async fn new_bucket(&self) -> String {
        let bucket = format!("vna-test-{}", &vna_blob::new_key()[..16]);
        let admin = S3BlobStore::new(self.settings(&bucket)).await.expect("S3 client");
        admin
            .client()
            .create_bucket()
            .bucket(&bucket)
            .object_lock_enabled_for_bucket(true)
            .send()
            .await
            .expect("creating a bucket with Object Lock");
        bucket
    }
}
