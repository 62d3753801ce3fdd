//! In-memory blob store, for unit tests of logic only: nothing here is durable.

use crate::{new_key, BlobError, BlobRef, BlobStore, BlobWriter, ByteStream, CheckItem, Range, StoredBlob};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct MemoryBlobStore {
    objects: Arc<Mutex<HashMap<String, Bytes>>>,
}

impl MemoryBlobStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of committed objects.
    pub fn len(&self) -> usize {
        self.objects.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, blob: BlobRef<'_>) -> Result<Bytes, BlobError> {
        let key = blob.key;
        if blob.version_id.is_some() {
            return Err(BlobError::NotFound { key: key.to_owned() });
        }
        let map = self.objects.lock().map_err(|_| BlobError::Unavailable { step: "locking the memory store" })?;
        map.get(key).cloned().ok_or_else(|| BlobError::NotFound { key: key.to_owned() })
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn create(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(MemWriter { store: self.clone(), buf: BytesMut::new() }))
    }

    async fn read(&self, blob: BlobRef<'_>, range: Option<Range>) -> Result<ByteStream, BlobError> {
        let data = self.get(blob)?;
        let size = data.len() as u64;
        let data = match range {
            Some(r) if r.offset.checked_add(r.length).is_none_or(|e| e > size) => {
                return Err(BlobError::RangeOutside { offset: r.offset, length: r.length, size })
            }
            Some(r) => data.slice(r.offset as usize..(r.offset + r.length) as usize),
            None => data,
        };
        Ok(futures::stream::once(async move { Ok(data) }).boxed())
    }

    async fn size(&self, blob: BlobRef<'_>) -> Result<u64, BlobError> {
        Ok(self.get(blob)?.len() as u64)
    }

    async fn delete(&self, blob: BlobRef<'_>) -> Result<(), BlobError> {
        self.get(blob)?;
        let key = blob.key;
        let mut map = self.objects.lock().map_err(|_| BlobError::Unavailable { step: "locking the memory store" })?;
        map.remove(key).map(|_| ()).ok_or_else(|| BlobError::NotFound { key: key.to_owned() })
    }

    async fn check(&self) -> Vec<CheckItem> {
        vec![CheckItem { what: "memory", ok: true, detail: "in memory: nothing is durable (tests only)".to_owned() }]
    }
}

struct MemWriter {
    store: MemoryBlobStore,
    buf: BytesMut,
}

#[async_trait]
impl BlobWriter for MemWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn commit(self: Box<Self>, _sha256: &str) -> Result<StoredBlob, BlobError> {
        let key = new_key();
        let size = self.buf.len() as u64;
        let mut map = self.store.objects.lock().map_err(|_| BlobError::Unavailable { step: "locking the memory store" })?;
        map.insert(key.clone(), self.buf.freeze());
        Ok(StoredBlob { key, version_id: None, size })
    }

    async fn abort(self: Box<Self>) {}
}
