//! A fault-injecting wrapper around any blob store, so that outage and crash behaviour is
//! tested rather than hoped for: writes or commits fail on demand, reads can be cut off.

use crate::{BlobError, BlobRef, BlobStore, BlobWriter, ByteStream, CheckItem, Locking, Protection, Range, Retention, StoredBlob};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Which operations fail. Flip them at any time from the test.
#[derive(Debug, Default)]
pub struct Faults {
    pub fail_create: AtomicBool,
    pub fail_write: AtomicBool,
    pub fail_commit: AtomicBool,
    pub fail_read: AtomicBool,
    /// Retention changes (`set_retention`) fail.
    pub fail_lock: AtomicBool,
}

pub struct FaultyBlobStore<S> {
    inner: S,
    faults: Arc<Faults>,
}

impl<S: BlobStore> FaultyBlobStore<S> {
    pub fn new(inner: S) -> (Self, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        (FaultyBlobStore { inner, faults: faults.clone() }, faults)
    }
}

fn check(flag: &AtomicBool, step: &'static str) -> Result<(), BlobError> {
    if flag.load(Ordering::SeqCst) {
        Err(BlobError::Unavailable { step })
    } else {
        Ok(())
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for FaultyBlobStore<S> {
    async fn create(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        check(&self.faults.fail_create, "creating an object (injected)")?;
        let inner = self.inner.create().await?;
        Ok(Box::new(FaultyWriter { inner, faults: self.faults.clone() }))
    }

    async fn read(&self, blob: BlobRef<'_>, range: Option<Range>) -> Result<ByteStream, BlobError> {
        check(&self.faults.fail_read, "reading an object (injected)")?;
        self.inner.read(blob, range).await
    }

    async fn size(&self, blob: BlobRef<'_>) -> Result<u64, BlobError> {
        self.inner.size(blob).await
    }

    async fn delete(&self, blob: BlobRef<'_>) -> Result<(), BlobError> {
        self.inner.delete(blob).await
    }

    async fn protection(&self, blob: BlobRef<'_>) -> Result<Protection, BlobError> {
        self.inner.protection(blob).await
    }

    async fn set_retention(&self, blob: BlobRef<'_>, retention: Retention) -> Result<(), BlobError> {
        check(&self.faults.fail_lock, "locking an object (injected)")?;
        self.inner.set_retention(blob, retention).await
    }

    async fn set_legal_hold(&self, blob: BlobRef<'_>, on: bool) -> Result<(), BlobError> {
        self.inner.set_legal_hold(blob, on).await
    }

    fn locking(&self) -> Locking {
        self.inner.locking()
    }

    async fn check(&self) -> Vec<CheckItem> {
        self.inner.check().await
    }
}

struct FaultyWriter {
    inner: Box<dyn BlobWriter>,
    faults: Arc<Faults>,
}

#[async_trait]
impl BlobWriter for FaultyWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        check(&self.faults.fail_write, "writing an object (injected)")?;
        self.inner.write(chunk).await
    }

    async fn commit(self: Box<Self>, sha256: &str) -> Result<StoredBlob, BlobError> {
        let (blob, flush) = self.commit_flushing(sha256).await?;
        flush.wait().await?;
        Ok(blob)
    }

    async fn commit_flushing(self: Box<Self>, sha256: &str) -> Result<(StoredBlob, crate::Flush), BlobError> {
        if let Err(e) = check(&self.faults.fail_commit, "committing an object (injected)") {
            self.inner.abort().await;
            return Err(e);
        }
        self.inner.commit_flushing(sha256).await
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await
    }

    fn lock_on_commit(&mut self, retention: crate::Retention) -> Result<(), BlobError> {
        self.inner.lock_on_commit(retention)
    }
}
