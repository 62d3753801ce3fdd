//! S3 blob store: the archive's production home on an S3-compatible object store (Scality
//! RING, Ceph RGW, MinIO, StorageGRID, AWS).
//!
//! - Objects are streamed in: up to `part_size` they go out as one PUT at commit; beyond, as a
//!   multipart upload whose parts leave while the data still arrives (at most
//!   `parts_in_flight` at once), aborted on any failure or when the writer is dropped.
//! - Every PUT and part carries Content-MD5, so the store verifies each byte it keeps;
//!   optionally `x-amz-checksum-sha256` too (stores that verify it: AWS; Ceph RGW 16 ignores
//!   it). The object's SHA-256 (from the caller, computed on the same bytes) is kept as the
//!   object tag `sha256`.
//! - Object Lock: a tier's default retention is set on every version at write time (headers on
//!   the PUT; for multipart, PutObjectRetention right after completion, since stores ignore lock
//!   headers on CreateMultipartUpload). The store itself then refuses to delete or shorten.
//! - Reads name the version the catalog recorded; ranges are one ranged GET.
//! - A semaphore caps requests in flight; timeouts and retries with backoff come from the SDK.
//!
//! # How it is built
//!
//! `S3BlobStore` over aws-sdk-s3 (`S3Settings`, resolved from `[storage.tiers.X] kind = "s3"` by
//! the composition root). `writer.rs`: an object up to `part_size` is buffered and sent as one
//! PUT at commit; a larger one becomes a multipart upload whose parts leave while data still
//! arrives (`parts_in_flight` tasks, each part in its own allocation, so memory per transfer is
//! at most `part_size × (parts_in_flight + 2)`; finished parts' buffers are reused, which keeps the heap from fragmenting). Every PUT and part carries Content-MD5 (the store
//! verifies every byte; `x-amz-checksum-sha256` too when `checksum_sha256` is set, for stores that
//! check it); the SHA-256 is kept as the object tag `sha256`. Object Lock at write time: lock
//! headers on the single PUT; for multipart, PutObjectRetention right after completion (stores
//! ignore lock headers on CreateMultipartUpload), and if that fails the still-unlocked version is
//! removed and nothing is acknowledged. A failed or dropped writer aborts its multipart upload
//! (the `Drop` spawns the abort). Reads pin the catalog's version id; a range is one ranged GET
//! (a short answer or 416 becomes `RangeOutside`). `error.rs` is the one mapping of SDK errors:
//! timeouts, connection failures, 5xx and throttling are transient (`Unavailable`/`Service`
//! ≥ 500, rendered 503 + Retry-After), BadDigest and friends `Corrupted`, 403 on delete or
//! retention `Locked`. A semaphore caps requests in flight (a streaming GET holds its slot until
//! its body is read); timeouts and standard retries (exponential backoff) come from the SDK,
//! with checksums "when required" only and stalled-stream protection off (a slow viewer is
//! backpressure, not a stalled store). `check.rs` is `vna storage check` for a tier (reachable and credentials, versioning, Object Lock against the tier's settings, a write/read/delete probe unless a retention would pin it, the bucket's abort-incomplete-upload rule, uploads left over). `testing`
//! finds the test S3 server (`VNA_TEST_S3_*`) and makes Object Lock buckets for tests.
//!
//! Why aws-sdk-s3 rather than a smaller client: it is the maintained SDK, does SigV4, retries with
//! backoff, timeouts and every Object Lock call; Ceph RGW 16 needs its request checksums set to
//! "when required" (measured against it: it rejects the SDK's default streamed-body checksums), which the settings do.

mod check;
mod error;
pub mod testing;
mod writer;

use async_trait::async_trait;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
};
use aws_sdk_s3::types::{ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetentionMode};
use bytes::Bytes;
use error::{locked_or, sdk, S3Failure};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vna_blob::{
    BlobError, BlobRef, BlobStore, BlobWriter, ByteStream, CheckItem, DefaultRetention, LockMode, Locking, Protection, Range, Retention,
};

/// Smallest part S3 accepts (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// Everything the backend needs, already resolved (secrets read from their files).
#[derive(Clone)]
pub struct S3Settings {
    /// `http(s)://host:port`; `None`: the SDK's default endpoint for the region (AWS).
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Put before every key (e.g. `"vna/"`); keys stay opaque.
    pub prefix: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// Storage class for new objects; `None`: the bucket's default.
    pub storage_class: Option<String>,
    /// Access key id and secret; `None`: the standard AWS credential chain (environment,
    /// profile files, instance metadata).
    pub credentials: Option<(String, String)>,
    /// Objects up to this size are one PUT; larger ones are uploaded in parts of this size.
    pub part_size: usize,
    /// Parts of one object being uploaded at once (memory per transfer: at most part_size × (this + 2): these, the one waiting for a slot, the one filling).
    pub parts_in_flight: usize,
    /// Send `x-amz-checksum-sha256` with every PUT and part (only where the store verifies it).
    pub checksum_sha256: bool,
    /// Retention given to every new object version; needs a bucket with Object Lock.
    pub default_retention: Option<DefaultRetention>,
    /// The bucket must have Object Lock enabled (checked by `vna storage check`).
    pub require_object_lock: bool,
    /// S3 requests in flight at once across the store; a streaming GET holds its slot until
    /// its body is read.
    pub max_in_flight: usize,
    /// How long a request waits for a slot before failing as unavailable.
    pub queue_timeout: Duration,
    pub connect_timeout: Duration,
    /// Per attempt of one request (a part upload, a GET until its headers).
    pub request_timeout: Duration,
    /// Attempts per request, the first included (standard retry mode: exponential backoff
    /// with jitter, on timeouts, connection failures, 5xx and throttling).
    pub max_attempts: u32,
    /// Server-side encryption asked for every new object; the store's answer to each write
    /// must confirm it, or the write fails. `None`: the bucket's default.
    pub encryption: Option<Encryption>,
}

/// Server-side encryption of new objects (S3 `x-amz-server-side-encryption`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3: keys managed by the store (`AES256`).
    S3,
    /// SSE-KMS (`aws:kms`) with this key, or the store's default key.
    Kms { key_id: Option<String> },
}

impl Encryption {
    pub(crate) fn algorithm(&self) -> aws_sdk_s3::types::ServerSideEncryption {
        match self {
            Encryption::S3 => aws_sdk_s3::types::ServerSideEncryption::Aes256,
            Encryption::Kms { .. } => aws_sdk_s3::types::ServerSideEncryption::AwsKms,
        }
    }

    pub(crate) fn key_id(&self) -> Option<String> {
        match self {
            Encryption::S3 => None,
            Encryption::Kms { key_id } => key_id.clone(),
        }
    }

    /// Whether a store's answer (its `x-amz-server-side-encryption` and KMS key id headers)
    /// says the object was encrypted as asked. A key id asked for must come back, as the ARN
    /// AWS gives or as given.
    pub fn confirmed_by(&self, algorithm: Option<&aws_sdk_s3::types::ServerSideEncryption>, key_id: Option<&str>) -> bool {
        if algorithm != Some(&self.algorithm()) {
            return false;
        }
        match self.key_id() {
            None => true,
            Some(asked) => key_id.is_some_and(|k| k == asked || k.ends_with(&format!("/{asked}"))),
        }
    }
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("credentials", &self.credentials.as_ref().map(|_| "<redacted>"))
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Defaults for everything but where the bucket is.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Settings {
            endpoint: None,
            region: "us-east-1".to_owned(),
            bucket: bucket.into(),
            prefix: String::new(),
            path_style: true,
            storage_class: None,
            credentials: None,
            part_size: 16 << 20,
            parts_in_flight: 2,
            checksum_sha256: false,
            default_retention: None,
            require_object_lock: false,
            encryption: None,
            max_in_flight: 64,
            queue_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            max_attempts: 3,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    #[error("part_size must be at least {MIN_PART_SIZE} bytes (S3's smallest part), got {0}")]
    PartTooSmall(usize),
    #[error("bucket name is empty")]
    NoBucket,
}

pub struct S3BlobStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: aws_sdk_s3::Client,
    settings: S3Settings,
    slots: Arc<Semaphore>,
}

impl Inner {
    fn object_key(&self, key: &str) -> Result<String, BlobError> {
        // Keys are ours: 32 lower-case hex digits. Anything else never reaches the store.
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(BlobError::BadKey { key: key.chars().take(40).collect() });
        }
        Ok(format!("{}{key}", self.settings.prefix))
    }

    /// A slot for one request; waits at most `queue_timeout`.
    pub(crate) async fn slot(&self) -> Result<OwnedSemaphorePermit, BlobError> {
        match tokio::time::timeout(self.settings.queue_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(BlobError::Unavailable { step: "waiting for a free S3 request slot" }),
        }
    }

    async fn head(&self, blob: BlobRef<'_>) -> Result<aws_sdk_s3::operation::head_object::HeadObjectOutput, BlobError> {
        let key = self.object_key(blob.key)?;
        let _slot = self.slot().await?;
        self.client
            .head_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .set_version_id(blob.version_id.map(str::to_owned))
            .send()
            .await
            .map_err(sdk("reading object metadata", blob.key))
    }
}

impl S3BlobStore {
    /// Builds the client. Nothing is sent yet: `check` (or the first request) finds out whether
    /// the store is there.
    pub async fn new(settings: S3Settings) -> Result<Self, S3SetupError> {
        if settings.part_size < MIN_PART_SIZE {
            return Err(S3SetupError::PartTooSmall(settings.part_size));
        }
        if settings.bucket.is_empty() {
            return Err(S3SetupError::NoBucket);
        }
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(settings.connect_timeout)
            .operation_attempt_timeout(settings.request_timeout)
            .build();
        let retry = aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(settings.max_attempts.max(1));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .timeout_config(timeouts)
            .retry_config(retry);
        if let Some((id, secret)) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "vna configuration"));
        }
        let shared = loader.load().await;
        let mut conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.path_style)
            // Stores other than AWS reject the SDK's default trailing checksums on streamed
            // bodies (Ceph RGW 16: 400 XAmzContentSHA256Mismatch); Content-MD5 is what we rely on.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // A viewer that reads a response slowly is backpressure, not a stalled store.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        if let Some(endpoint) = &settings.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        let client = aws_sdk_s3::Client::from_conf(conf.build());
        let slots = Arc::new(Semaphore::new(settings.max_in_flight.max(1)));
        Ok(S3BlobStore { inner: Arc::new(Inner { client, settings, slots }) })
    }

    /// The SDK client, for tests that talk to the store directly (as an operator with the
    /// archive's credentials would).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.inner.client
    }

    pub fn settings(&self) -> &S3Settings {
        &self.inner.settings
    }

    /// The full object key of an archive key (prefix + key).
    pub fn object_key(&self, key: &str) -> Result<String, BlobError> {
        self.inner.object_key(key)
    }

    /// The SHA-256 recorded with an object version (its `sha256` tag), if any.
    pub async fn recorded_sha256(&self, blob: BlobRef<'_>) -> Result<Option<String>, BlobError> {
        let key = self.inner.object_key(blob.key)?;
        let _slot = self.inner.slot().await?;
        let out = self
            .inner
            .client
            .get_object_tagging()
            .bucket(&self.inner.settings.bucket)
            .key(key)
            .set_version_id(blob.version_id.map(str::to_owned))
            .send()
            .await
            .map_err(sdk("reading object tags", blob.key))?;
        Ok(out.tag_set().iter().find(|t| t.key() == writer::SHA256_TAG).map(|t| t.value().to_owned()))
    }
}

/// The mode as PutObjectRetention takes it.
pub(crate) fn retention_mode(m: LockMode) -> ObjectLockRetentionMode {
    match m {
        LockMode::Compliance => ObjectLockRetentionMode::Compliance,
        LockMode::Governance => ObjectLockRetentionMode::Governance,
    }
}

/// The mode as PutObject's lock header takes it.
pub(crate) fn lock_mode(m: LockMode) -> ObjectLockMode {
    match m {
        LockMode::Compliance => ObjectLockMode::Compliance,
        LockMode::Governance => ObjectLockMode::Governance,
    }
}

/// `bytes a-b/total` → total.
fn total_from_content_range(v: &str) -> Option<u64> {
    v.rsplit('/').next()?.trim().parse().ok()
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn create(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(writer::S3Writer::new(self.inner.clone())))
    }

    async fn read(&self, blob: BlobRef<'_>, range: Option<Range>) -> Result<ByteStream, BlobError> {
        let key = self.inner.object_key(blob.key)?;
        if let Some(r) = range {
            let end = r.offset.checked_add(r.length);
            if r.length == 0 || end.is_none() {
                // No ranged GET can express these; the size decides.
                let size = self.size(blob).await?;
                if end.is_none_or(|e| e > size) {
                    return Err(BlobError::RangeOutside { offset: r.offset, length: r.length, size });
                }
                return Ok(futures::stream::empty().boxed());
            }
        }
        let slot = self.inner.slot().await?;
        let sent = self
            .inner
            .client
            .get_object()
            .bucket(&self.inner.settings.bucket)
            .key(key)
            .set_version_id(blob.version_id.map(str::to_owned))
            .set_range(range.map(|r| format!("bytes={}-{}", r.offset, r.offset + r.length - 1)))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                let f = S3Failure::from_sdk(&e);
                if let (Some(r), Some(416)) = (range, f.status) {
                    drop(slot);
                    let size = self.size(blob).await?;
                    return Err(BlobError::RangeOutside { offset: r.offset, length: r.length, size });
                }
                return Err(f.into_blob_error("reading an object", blob.key));
            }
        };
        if let Some(r) = range {
            // S3 shortens a range that runs past the end instead of refusing it.
            let got = out.content_length().unwrap_or(0).max(0) as u64;
            if got < r.length {
                let size = out.content_range().and_then(total_from_content_range).unwrap_or(r.offset + got);
                return Err(BlobError::RangeOutside { offset: r.offset, length: r.length, size });
            }
        }
        let body = out.body;
        let stream = futures::stream::unfold(Some((body, slot)), |state| async move {
            let (mut body, slot) = state?;
            match body.next().await {
                Some(Ok(chunk)) => Some((Ok::<Bytes, BlobError>(chunk), Some((body, slot)))),
                Some(Err(e)) => Some((Err(BlobError::Io { step: "reading an object from S3", source: std::io::Error::other(e) }), None)),
                None => None,
            }
        });
        Ok(stream.boxed())
    }

    async fn size(&self, blob: BlobRef<'_>) -> Result<u64, BlobError> {
        let head = self.inner.head(blob).await?;
        Ok(head.content_length().unwrap_or(0).max(0) as u64)
    }

    async fn delete(&self, blob: BlobRef<'_>) -> Result<(), BlobError> {
        // S3 answers 204 for a missing key (and would add a delete marker): look first.
        self.inner.head(blob).await?;
        let key = self.inner.object_key(blob.key)?;
        let _slot = self.inner.slot().await?;
        self.inner
            .client
            .delete_object()
            .bucket(&self.inner.settings.bucket)
            .key(key)
            .set_version_id(blob.version_id.map(str::to_owned))
            .send()
            .await
            .map_err(locked_or("deleting an object", blob.key))?;
        Ok(())
    }

    async fn protection(&self, blob: BlobRef<'_>) -> Result<Protection, BlobError> {
        let key = self.inner.object_key(blob.key)?;
        self.inner.head(blob).await?;
        let _slot = self.inner.slot().await?;
        let bucket = &self.inner.settings.bucket;
        let version = blob.version_id.map(str::to_owned);
        let retention = match self.inner.client.get_object_retention().bucket(bucket).key(&key).set_version_id(version.clone()).send().await
        {
            Ok(out) => match out.retention() {
                Some(r) => {
                    let mode = match r.mode() {
                        Some(ObjectLockRetentionMode::Compliance) => Some(LockMode::Compliance),
                        Some(ObjectLockRetentionMode::Governance) => Some(LockMode::Governance),
                        _ => None,
                    };
                    let until = r.retain_until_date().and_then(|d| SystemTime::try_from(*d).ok());
                    mode.zip(until).map(|(mode, retain_until)| Retention { mode, retain_until })
                }
                None => None,
            },
            Err(e) => match S3Failure::from_sdk(&e) {
                f if f.is_no_lock() => None,
                f => return Err(f.into_blob_error("reading object retention", blob.key)),
            },
        };
        let legal_hold = match self.inner.client.get_object_legal_hold().bucket(bucket).key(&key).set_version_id(version).send().await {
            Ok(out) => out.legal_hold().and_then(|h| h.status()) == Some(&ObjectLockLegalHoldStatus::On),
            Err(e) => match S3Failure::from_sdk(&e) {
                f if f.is_no_lock() => false,
                f => return Err(f.into_blob_error("reading object legal hold", blob.key)),
            },
        };
        Ok(Protection { retention, legal_hold })
    }

    async fn set_retention(&self, blob: BlobRef<'_>, retention: Retention) -> Result<(), BlobError> {
        writer::put_retention(&self.inner, blob, retention).await
    }

    async fn set_legal_hold(&self, blob: BlobRef<'_>, on: bool) -> Result<(), BlobError> {
        let key = self.inner.object_key(blob.key)?;
        let _slot = self.inner.slot().await?;
        let status = if on { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off };
        self.inner
            .client
            .put_object_legal_hold()
            .bucket(&self.inner.settings.bucket)
            .key(key)
            .set_version_id(blob.version_id.map(str::to_owned))
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .map_err(sdk("setting a legal hold", blob.key))?;
        Ok(())
    }

    fn locking(&self) -> Locking {
        Locking::Enforced
    }

    async fn check(&self) -> Vec<CheckItem> {
        check::run(&self.inner).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_range_total() {
        assert_eq!(super::total_from_content_range("bytes 9995-9999/10000"), Some(10000));
        assert_eq!(super::total_from_content_range("bytes 0-0/*"), None);
    }

    #[test]
    fn encryption_is_confirmed_only_by_the_algorithm_and_key_asked_for() {
        use super::Encryption;
        use aws_sdk_s3::types::ServerSideEncryption as Sse;
        let kms = Encryption::Kms { key_id: Some("k1".into()) };
        assert!(kms.confirmed_by(Some(&Sse::AwsKms), Some("k1")));
        assert!(kms.confirmed_by(Some(&Sse::AwsKms), Some("arn:aws:kms:eu-central-1:111122223333:key/k1")));
        assert!(!kms.confirmed_by(Some(&Sse::AwsKms), Some("k2")), "another key");
        assert!(!kms.confirmed_by(Some(&Sse::AwsKms), None), "the key not said");
        assert!(!kms.confirmed_by(None, None), "a store that ignored the request");
        assert!(!kms.confirmed_by(Some(&Sse::Aes256), Some("k1")));
        assert!(Encryption::Kms { key_id: None }.confirmed_by(Some(&Sse::AwsKms), Some("whatever the default is")));
        assert!(Encryption::S3.confirmed_by(Some(&Sse::Aes256), None));
        assert!(!Encryption::S3.confirmed_by(None, None));
    }
}
