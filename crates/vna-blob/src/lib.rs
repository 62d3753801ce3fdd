//! Blob stores: durable, streamed, opaque-keyed objects with ranged reads.
//!
//! One trait, [`BlobStore`], with a filesystem backend (embedded default), an in-memory one
//! (unit tests of logic only) and a fault-injecting wrapper ([`faulty`]) for crash and outage
//! tests. Every backend passes the suite in [`conformance`]. A blob store knows nothing of
//! DICOM: it stores bytes under keys it makes up itself, and never reuses a key.
//!
//! # How it is built
//!
//! `BlobStore` (`create` → `BlobWriter::{write, commit(sha256), abort}`, `read` with an optional
//! range, `size`, `delete`, `protection`, `set_retention`, `set_legal_hold`, `locking`, `check`).
//! Objects are named by `BlobRef { key, version_id }`: the version the catalog recorded, or the
//! current one when `version_id` is `None`. `delete` with a version destroys that version; without
//! one, a versioned store (S3) hides the current version behind a delete marker. A protected
//! version is `BlobError::Locked`, and nothing changes. The store makes the key (128 random bits,
//! hex): keys never carry UIDs or patient data and are never reused. `commit` takes the SHA-256
//! the ingest pipeline computed on the same bytes, so a store can keep it beside the object
//! without hashing twice. `fs::FsBlobStore` writes `tmp/<key>.part` (created at the first write
//! out, so an object under 1 MiB costs one blocking-pool hand-off in all), fsyncs, renames to
//! `objects/ab/cd/<key>`, fsyncs the directory (and, when `ab/` or `cd/` was just created, their
//! parents); leftovers in `tmp/` are removed at open (never acknowledged). An object under
//! 1 MiB without a retention is packed instead into an append-only segment (`pack`: one
//! shared `fdatasync`, deletes punch holes). It emulates Object Lock (`lockfile.rs`: `<key>.lock` beside the object, written
//! durably before the object is renamed into place; `Locking::Emulated`, weaker than S3: whoever
//! can write the directory can delete). `retention_change_allowed` is the one rule both backends
//! follow (a retention in force only moves later; COMPLIANCE never becomes GOVERNANCE).
//! `memory` is for unit tests of logic only; `faulty::FaultyBlobStore` injects failures on
//! create/write/commit/read. `conformance` holds the suite every backend runs
//! (`blob_store_conformance!`, and `blob_store_conformance!(locking …)` for the lock cases).

pub mod conformance;
pub mod faulty;
pub mod fs;
pub mod memory;
mod pack;

mod lockfile;

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

/// One object version: the key, and the store's version id where the store versions objects.
/// Without a version id, the current version is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef<'a> {
    pub key: &'a str,
    pub version_id: Option<&'a str>,
}

impl<'a> BlobRef<'a> {
    /// The current version under `key`.
    pub fn current(key: &'a str) -> Self {
        BlobRef { key, version_id: None }
    }

    pub fn new(key: &'a str, version_id: Option<&'a str>) -> Self {
        BlobRef { key, version_id }
    }
}

impl<'a> From<&'a StoredBlob> for BlobRef<'a> {
    fn from(b: &'a StoredBlob) -> Self {
        BlobRef { key: &b.key, version_id: b.version_id.as_deref() }
    }
}

/// Object Lock retention mode (S3 semantics). In COMPLIANCE mode nobody, not even the account
/// that wrote the object, can delete the version or shorten its retention before the date; in
/// GOVERNANCE mode a user holding the bypass permission can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Compliance,
    Governance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }
}

/// A retain-until date and its mode, on one object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    /// Whole seconds; stores keep second precision at most.
    pub retain_until: std::time::SystemTime,
}

impl Retention {
    /// The retention that satisfies both: the later date, COMPLIANCE if either is.
    pub fn strongest(a: Option<Retention>, b: Option<Retention>) -> Option<Retention> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Retention {
                mode: if a.mode == LockMode::Compliance || b.mode == LockMode::Compliance {
                    LockMode::Compliance
                } else {
                    LockMode::Governance
                },
                retain_until: a.retain_until.max(b.retain_until),
            }),
            (a, b) => a.or(b),
        }
    }
}

/// What protects an object version from deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protection {
    pub retention: Option<Retention>,
    pub legal_hold: bool,
}

impl Protection {
    /// True when a delete of the version must be refused at `now`.
    pub fn forbids_delete(&self, now: std::time::SystemTime) -> bool {
        self.legal_hold || self.retention.is_some_and(|r| r.retain_until > now)
    }
}

/// One line of a store's self-check (`vna storage check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckItem {
    pub what: &'static str,
    pub ok: bool,
    /// What was found; no secrets.
    pub detail: String,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts a new object under a fresh key. Nothing is visible under that key until
    /// [`BlobWriter::commit`] returns.
    async fn create(&self) -> Result<Box<dyn BlobWriter>, BlobError>;

    /// Streams an object version, or `range` of it. A range past the end is an error, not a
    /// short read.
    async fn read(&self, blob: BlobRef<'_>, range: Option<Range>) -> Result<ByteStream, BlobError>;

    /// Size of a committed object version.
    async fn size(&self, blob: BlobRef<'_>) -> Result<u64, BlobError>;

    /// Removes an object. With a version id, that version is destroyed for good; without one, on
    /// a versioned store the current version is hidden behind a delete marker (older versions
    /// stay readable by id) and elsewhere the object is removed. A missing object is
    /// `NotFound`; a version under retention or legal hold is `Locked`, and nothing changes.
    async fn delete(&self, blob: BlobRef<'_>) -> Result<(), BlobError>;

    /// Retention and legal hold of an object version. Stores without locking report none.
    async fn protection(&self, blob: BlobRef<'_>) -> Result<Protection, BlobError> {
        self.size(blob).await?;
        Ok(Protection::default())
    }

    /// Sets or extends the retention of an object version. Shortening or weakening a
    /// COMPLIANCE retention is `Locked`.
    async fn set_retention(&self, blob: BlobRef<'_>, retention: Retention) -> Result<(), BlobError> {
        let _ = (blob, retention);
        Err(BlobError::Unsupported { what: "object retention" })
    }

    /// Places (`true`) or lifts a legal hold on an object version.
    async fn set_legal_hold(&self, blob: BlobRef<'_>, on: bool) -> Result<(), BlobError> {
        let _ = (blob, on);
        Err(BlobError::Unsupported { what: "legal hold" })
    }

    /// Whether [`set_retention`](BlobStore::set_retention) and
    /// [`set_legal_hold`](BlobStore::set_legal_hold) work here, and how strongly they bind.
    fn locking(&self) -> Locking {
        Locking::None
    }

    /// Checks that the store is usable as configured (`vna storage check`).
    async fn check(&self) -> Vec<CheckItem>;
}

/// How a store enforces retention and legal hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locking {
    /// Not at all.
    None,
    /// By the archive's own code: anyone with access to the storage can still delete.
    Emulated,
    /// By the storage system itself (S3 Object Lock).
    Enforced,
}

impl Locking {
    /// Who enforces the lock: `store`, `archive` or `none` (admin API, `vna storage check`).
    pub fn enforced_by(self) -> &'static str {
        match self {
            Locking::Enforced => "store",
            Locking::Emulated => "archive",
            Locking::None => "none",
        }
    }
}

#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError>;

    /// Makes the object durable (on the filesystem: data fsynced, renamed into place,
    /// directory fsynced; on S3: the PUT or the multipart completion answered) and returns where
    /// it is. `sha256` is the lower-case hex SHA-256 of everything written, computed by the
    /// caller on the same bytes; stores that can, keep it beside the object and let the storage
    /// verify it. Only after this may anything be acknowledged.
    async fn commit(self: Box<Self>, sha256: &str) -> Result<StoredBlob, BlobError>;

    /// [`Self::commit`], except that the object's flush may still be running when it returns:
    /// the object is durable once the [`Flush`] ends well, and nothing may be acknowledged, nor
    /// a catalog row naming it committed, before. The caller overlaps its own work (the catalog
    /// registration's statements) with the flush. Stores whose commit is their flush (S3's PUT,
    /// a file renamed into place) end it here.
    async fn commit_flushing(self: Box<Self>, sha256: &str) -> Result<(StoredBlob, Flush), BlobError> {
        Ok((self.commit(sha256).await?, Flush::done()))
    }

    /// Gives up on the object; nothing is left behind that a reader could see.
    async fn abort(self: Box<Self>);

    /// Locks the object from its commit on until `retention` (or the store's default
    /// retention, whichever is stronger), with no unlocked moment a reader or a delete could
    /// see. Called before [`Self::commit`]. Stores that cannot lock say so.
    fn lock_on_commit(&mut self, retention: Retention) -> Result<(), BlobError> {
        let _ = retention;
        Err(BlobError::Unsupported { what: "retention" })
    }
}

/// The end of an object's flush after [`BlobWriter::commit_flushing`].
#[derive(Debug)]
#[must_use = "the object is durable only once its flush has ended well"]
pub struct Flush(Option<tokio::sync::oneshot::Receiver<Result<(), BlobError>>>);

impl Flush {
    /// A flush that has ended well.
    pub fn done() -> Flush {
        Flush(None)
    }

    /// A flush another task runs, ending with what it sends.
    pub fn running(end: tokio::sync::oneshot::Receiver<Result<(), BlobError>>) -> Flush {
        Flush(Some(end))
    }

    /// Waits for the flush; an error means the object may not be durable.
    pub async fn wait(self) -> Result<(), BlobError> {
        match self.0 {
            None => Ok(()),
            Some(end) => end.await.unwrap_or(Err(BlobError::Unavailable { step: "flushing an object (its task ended)" })),
        }
    }
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
    Io {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("blob store unavailable while {step}")]
    Unavailable { step: &'static str },
    #[error("object {key} is under retention or legal hold")]
    Locked { key: String },
    #[error("this blob store does not support {what}")]
    Unsupported { what: &'static str },
    #[error("the store refused the bytes as corrupted while {step}")]
    Corrupted { step: &'static str },
    #[error("the store answered {status} {code} while {step}")]
    Service { step: &'static str, status: u16, code: String },
    #[error("the sha256 given at commit is not 64 hex digits")]
    BadDigest,
}

impl BlobError {
    pub fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> BlobError {
        move |source| BlobError::Io { step, source }
    }

    /// True when the same call may succeed later (store down, disk full).
    pub fn is_transient(&self) -> bool {
        matches!(self, BlobError::Unavailable { .. })
            || matches!(self, BlobError::Service { status, .. } if *status >= 500 || *status == 429)
            || matches!(self, BlobError::Io { source, .. } if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted))
    }
}

/// A retention to give every new object: a mode and a number of days from the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRetention {
    pub mode: LockMode,
    pub days: u32,
}

impl DefaultRetention {
    /// The retention an object written at `now` gets (whole seconds).
    pub fn from(&self, now: std::time::SystemTime) -> Retention {
        let secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let until = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs + u64::from(self.days) * 86_400);
        Retention { mode: self.mode, retain_until: until }
    }
}

/// The rule both S3 and the emulation follow for changing a retention that is still in force:
/// the date may only move later, and COMPLIANCE may not become GOVERNANCE.
pub fn retention_change_allowed(old: Option<Retention>, new: Retention, now: std::time::SystemTime) -> bool {
    match old {
        Some(old) if old.retain_until > now => {
            new.retain_until >= old.retain_until && !(old.mode == LockMode::Compliance && new.mode == LockMode::Governance)
        }
        _ => true,
    }
}

/// A fresh opaque key: 128 random bits, hex. Carries nothing about the object.
pub fn new_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Reads a whole object into memory. For small objects and tests only.
pub async fn read_all(store: &dyn BlobStore, blob: BlobRef<'_>, range: Option<Range>) -> Result<Vec<u8>, BlobError> {
    use futures::TryStreamExt;
    let mut s = store.read(blob, range).await?;
    let mut out = Vec::new();
    while let Some(chunk) = s.try_next().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_strongest_retention_is_the_later_date_and_compliance_if_either() {
        let r = |mode, secs| Retention { mode, retain_until: UNIX_EPOCH + Duration::from_secs(secs) };
        let (c, g) = (LockMode::Compliance, LockMode::Governance);
        assert_eq!(Retention::strongest(Some(r(c, 10)), Some(r(g, 20))), Some(r(c, 20)));
        assert_eq!(Retention::strongest(Some(r(g, 30)), Some(r(g, 20))), Some(r(g, 30)));
        assert_eq!(Retention::strongest(None, Some(r(g, 20))), Some(r(g, 20)));
        assert_eq!(Retention::strongest(None, None), None);
    }
}
