//! Blob stores: durable, streamed, opaque-keyed objects with ranged reads.
//!
//! One trait, [`BlobStore`], with a filesystem backend (embedded default), an in-memory one
//! (unit tests of logic only) and a fault-injecting wrapper ([`faulty`]) for crash and outage
//! tests. Every backend passes the suite in [`conformance`]. A blob store knows nothing of
//! DICOM: it stores bytes under keys it makes up itself, and never reuses a key.

pub mod conformance;
pub mod faulty;
pub mod fs;
pub mod memory;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A stream of an object's bytes, in chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes, BlobError>>;

/// A committed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Opaque, never reused; made by the store.
    pub key: String,
    /// Version id where the store versions objects.
    pub version_id: Option<String>,
    pub size: u64,
}

/// `length` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub offset: u64,
    pub length: u64,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts a new object under a fresh key. Nothing is visible under that key until
    /// [`BlobWriter::commit`] returns.
    async fn create(&self) -> Result<Box<dyn BlobWriter>, BlobError>;

    /// Streams an object, or `range` of it. A range past the end is an error, not a short read.
    async fn read(&self, key: &str, range: Option<Range>) -> Result<ByteStream, BlobError>;

    /// Size of a committed object.
    async fn size(&self, key: &str) -> Result<u64, BlobError>;

    /// Removes an object. Removing a missing key is `NotFound`.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;
}

#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError>;

    /// Makes the object durable (on the filesystem: data fsynced, renamed into place,
    /// directory fsynced) and returns where it is. Only after this may anything be
    /// acknowledged.
    async fn commit(self: Box<Self>) -> Result<StoredBlob, BlobError>;

    /// Gives up on the object; nothing is left behind that a reader could see.
    async fn abort(self: Box<Self>);
}

/// One variant per failing step; messages carry keys at most (keys are opaque, no PHI).
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no object under key {key}")]
    NotFound { key: String },
    #[error("range {offset}+{length} is outside the object (size {size})")]
    RangeOutside { offset: u64, length: u64, size: u64 },
    #[error("key {key} is not a key this store makes")]
    BadKey { key: String },
    #[error("blob store I/O failed while {step}")]
    Io { step: &'static str, #[source] source: std::io::Error },
    #[error("blob store unavailable while {step}")]
    Unavailable { step: &'static str },
}

impl BlobError {
    pub fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> BlobError {
        move |source| BlobError::Io { step, source }
    }

    /// True when the same call may succeed later (store down, disk full).
    pub fn is_transient(&self) -> bool {
        matches!(self, BlobError::Unavailable { .. })
            || matches!(self, BlobError::Io { source, .. } if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted))
    }
}

/// A fresh opaque key: 128 random bits, hex. Carries nothing about the object.
pub fn new_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Reads a whole object into memory. For small objects and tests only.
pub async fn read_all(store: &dyn BlobStore, key: &str, range: Option<Range>) -> Result<Vec<u8>, BlobError> {
    use futures::TryStreamExt;
    let mut s = store.read(key, range).await?;
    let mut out = Vec::new();
    while let Some(chunk) = s.try_next().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
