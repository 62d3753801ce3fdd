//! Streaming an object into S3: one PUT for small objects, a multipart upload for large ones,
//! Content-MD5 on every request, the lock applied at write time, and no multipart upload left
//! behind whatever fails.

use crate::error::{locked_or, sdk, S3Failure};
use crate::{lock_mode, retention_mode, Encryption, Inner};
use async_trait::async_trait;
use aws_sdk_s3::primitives::{ByteStream as SdkBody, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockRetention, ServerSideEncryption, StorageClass, Tag, Tagging,
};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use md5::Digest;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::task::JoinHandle;
use vna_blob::{new_key, BlobError, BlobRef, BlobWriter, Retention, StoredBlob};

/// Object tag holding the SHA-256 (lower-case hex) of the object's bytes.
pub(crate) const SHA256_TAG: &str = "sha256";

pub(crate) struct S3Writer {
    inner: Arc<Inner>,
    key: String,
    buf: BytesMut,
    size: u64,
    upload: Option<Upload>,
    finished: bool,
    /// Part buffers whose upload is done, kept for the next parts: a large object cycles
    /// through a few buffers instead of allocating (and fragmenting the heap
    /// with) a new part-sized buffer per part.
    spare: Vec<BytesMut>,
    /// A retention asked for this object (`lock_on_commit`), beside the tier's default.
    lock: Option<Retention>,
}

struct Upload {
    id: String,
    next_part: i32,
    done: Vec<CompletedPart>,
    pending: VecDeque<JoinHandle<Result<(CompletedPart, Bytes), BlobError>>>,
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn content_md5(data: &[u8]) -> String {
    b64(&md5::Md5::digest(data))
}

fn sha256_b64(data: &[u8]) -> String {
    b64(&sha2::Sha256::digest(data))
}

impl S3Writer {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        S3Writer { inner, key: new_key(), buf: BytesMut::new(), size: 0, upload: None, finished: false, spare: Vec::new(), lock: None }
    }

    fn object_key(&self) -> Result<String, BlobError> {
        self.inner.object_key(&self.key)
    }

    async fn start_upload(&mut self) -> Result<(), BlobError> {
        let object_key = self.object_key()?;
        let _slot = self.inner.slot().await?;
        let out = self
            .inner
            .client
            .create_multipart_upload()
            .bucket(&self.inner.settings.bucket)
            .key(object_key)
            .set_storage_class(self.inner.settings.storage_class.as_deref().map(StorageClass::from))
            .set_server_side_encryption(self.inner.settings.encryption.as_ref().map(Encryption::algorithm))
            .set_ssekms_key_id(self.inner.settings.encryption.as_ref().and_then(Encryption::key_id))
            // Stores that verify part checksums (AWS) want the algorithm declared up front.
            .set_checksum_algorithm(self.inner.settings.checksum_sha256.then_some(ChecksumAlgorithm::Sha256))
            .send()
            .await
            .map_err(sdk("starting a multipart upload", &self.key))?;
        let id = out.upload_id().ok_or(BlobError::Service {
            step: "starting a multipart upload",
            status: 200,
            code: "no upload id".to_owned(),
        })?;
        self.upload = Some(Upload { id: id.to_owned(), next_part: 1, done: Vec::new(), pending: VecDeque::new() });
        Ok(())
    }

    /// Hands one part to a task; waits for the oldest when too many are in flight.
    async fn send_part(&mut self, data: Bytes) -> Result<(), BlobError> {
        if self.upload.is_none() {
            self.start_upload().await?;
        }
        let object_key = self.object_key()?;
        let inner = self.inner.clone();
        let key = self.key.clone();
        let limit = self.inner.settings.parts_in_flight.max(1);
        let Some(upload) = self.upload.as_mut() else { return Err(BlobError::Unavailable { step: "starting a multipart upload" }) };
        let number = upload.next_part;
        upload.next_part += 1;
        let upload_id = upload.id.clone();
        upload.pending.push_back(tokio::spawn(async move {
            let kept = data.clone();
            let md5 = content_md5(&data);
            let sha = inner.settings.checksum_sha256.then(|| sha256_b64(&data));
            let len = data.len() as i64;
            let _slot = inner.slot().await?;
            let out = inner
                .client
                .upload_part()
                .bucket(&inner.settings.bucket)
                .key(object_key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(len)
                .content_md5(md5)
                .set_checksum_sha256(sha.clone())
                .body(SdkBody::from(data))
                .send()
                .await
                .map_err(sdk("uploading a part", &key))?;
            let etag = out.e_tag().ok_or(BlobError::Service { step: "uploading a part", status: 200, code: "no ETag".to_owned() })?;
            Ok((CompletedPart::builder().part_number(number).e_tag(etag).set_checksum_sha256(sha).build(), kept))
        }));
        while upload.pending.len() > limit {
            if let Some(task) = upload.pending.pop_front() {
                let (part, buffer) = join(task).await?;
                upload.done.push(part);
                recycle(&mut self.spare, buffer, limit + 1);
            }
        }
        Ok(())
    }

    /// The lock of the new version: the tier's default retention from now, or the one asked
    /// for this object, whichever is stronger.
    fn retention(&self) -> Option<Retention> {
        Retention::strongest(self.inner.settings.default_retention.map(|r| r.from(std::time::SystemTime::now())), self.lock)
    }

    /// An empty buffer for the next part: a recycled one, or a new one of a part's size.
    fn fresh_buffer(&mut self) -> BytesMut {
        self.spare.pop().unwrap_or_else(|| BytesMut::with_capacity(self.inner.settings.part_size))
    }

    async fn put_single(&mut self, sha256: &str) -> Result<Option<String>, BlobError> {
        let object_key = self.object_key()?;
        let data = std::mem::take(&mut self.buf).freeze();
        let settings = &self.inner.settings;
        let retention = self.retention();
        let _slot = self.inner.slot().await?;
        let out = self
            .inner
            .client
            .put_object()
            .bucket(&settings.bucket)
            .key(object_key)
            .content_length(data.len() as i64)
            .content_md5(content_md5(&data))
            .set_checksum_sha256(settings.checksum_sha256.then(|| sha256_b64(&data)))
            .tagging(format!("{SHA256_TAG}={sha256}"))
            .set_storage_class(settings.storage_class.as_deref().map(StorageClass::from))
            .set_object_lock_mode(retention.map(|r| lock_mode(r.mode)))
            .set_object_lock_retain_until_date(retention.map(|r| DateTime::from(r.retain_until)))
            .set_server_side_encryption(settings.encryption.as_ref().map(Encryption::algorithm))
            .set_ssekms_key_id(settings.encryption.as_ref().and_then(Encryption::key_id))
            .body(SdkBody::from(data))
            .send()
            .await
            .map_err(sdk("storing an object", &self.key))?;
        drop(_slot);
        let version = out.version_id().map(str::to_owned);
        self.confirm_encryption(version.as_deref(), out.server_side_encryption(), out.ssekms_key_id()).await?;
        Ok(version)
    }

    /// The store must say the new object is encrypted as configured (the answer to the write,
    /// or else the object's metadata): a store that ignores the request would otherwise keep
    /// patient data in clear while the configuration says otherwise. Such a write fails, and
    /// its object goes (unless already locked).
    async fn confirm_encryption(
        &self,
        version: Option<&str>,
        algorithm: Option<&ServerSideEncryption>,
        key_id: Option<&str>,
    ) -> Result<(), BlobError> {
        let Some(asked) = &self.inner.settings.encryption else { return Ok(()) };
        if asked.confirmed_by(algorithm, key_id) {
            return Ok(());
        }
        let head = self.inner.head(BlobRef::new(&self.key, version)).await?;
        if asked.confirmed_by(head.server_side_encryption(), head.ssekms_key_id()) {
            return Ok(());
        }
        tracing::error!(key = %self.key, asked = ?asked, got = ?head.server_side_encryption(), "the store did not encrypt a new object as configured: the write fails");
        self.remove_version(version).await;
        Err(BlobError::Service {
            step: "confirming server-side encryption",
            status: 200,
            code: "object not encrypted as configured".into(),
        })
    }

    async fn complete(&mut self, sha256: &str) -> Result<Option<String>, BlobError> {
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf).freeze();
            self.send_part(last).await?;
        }
        let object_key = self.object_key()?;
        let Some(upload) = self.upload.as_mut() else { return Err(BlobError::Unavailable { step: "completing a multipart upload" }) };
        while let Some(task) = upload.pending.pop_front() {
            upload.done.push(join(task).await?.0);
        }
        let parts = std::mem::take(&mut upload.done);
        let upload_id = upload.id.clone();
        let out = {
            let _slot = self.inner.slot().await?;
            self.inner
                .client
                .complete_multipart_upload()
                .bucket(&self.inner.settings.bucket)
                .key(&object_key)
                .upload_id(upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(sdk("completing a multipart upload", &self.key))?
        };
        // Completed: there is no upload left to abort, only an object.
        self.upload = None;
        let mut version = out.version_id().filter(|v| !v.is_empty()).map(str::to_owned);
        if version.is_none() {
            version = self.inner.head(BlobRef::current(&self.key)).await?.version_id().map(str::to_owned);
        }
        self.confirm_encryption(version.as_deref(), out.server_side_encryption(), out.ssekms_key_id()).await?;
        // Stores ignore lock headers on CreateMultipartUpload: lock the version now, before
        // anything is acknowledged. If that fails the version is still unlocked, so it can go.
        if let Some(retention) = self.retention() {
            let blob = BlobRef::new(&self.key, version.as_deref());
            if let Err(e) = put_retention(&self.inner, blob, retention).await {
                self.remove_version(version.as_deref()).await;
                return Err(e);
            }
        }
        self.tag(version.as_deref(), sha256).await;
        Ok(version)
    }

    /// Tags a completed multipart object with its SHA-256. The catalog is the record; a
    /// failed tag costs `verify` a cross-check, not the object.
    async fn tag(&self, version: Option<&str>, sha256: &str) {
        let Ok(object_key) = self.object_key() else { return };
        let Ok(tag) = Tag::builder().key(SHA256_TAG).value(sha256).build() else { return };
        let Ok(tagging) = Tagging::builder().tag_set(tag).build() else { return };
        let Ok(_slot) = self.inner.slot().await else { return };
        let sent = self
            .inner
            .client
            .put_object_tagging()
            .bucket(&self.inner.settings.bucket)
            .key(object_key)
            .set_version_id(version.map(str::to_owned))
            .tagging(tagging)
            .send()
            .await;
        if let Err(e) = sent {
            let f = S3Failure::from_sdk(&e);
            tracing::warn!(key = %self.key, status = ?f.status, code = %f.code, "could not tag an object with its sha256");
        }
    }

    async fn remove_version(&self, version: Option<&str>) {
        let Ok(object_key) = self.object_key() else { return };
        let sent = self
            .inner
            .client
            .delete_object()
            .bucket(&self.inner.settings.bucket)
            .key(object_key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await;
        if sent.is_err() {
            tracing::warn!(key = %self.key, "could not remove an unacknowledged object version; the sweeper will");
        }
    }

    async fn abort_upload(&mut self) {
        let Some(upload) = self.upload.take() else { return };
        for task in &upload.pending {
            task.abort();
        }
        abort_multipart(&self.inner, &self.key, &upload.id).await;
    }
}

async fn abort_multipart(inner: &Inner, key: &str, upload_id: &str) {
    let Ok(object_key) = inner.object_key(key) else { return };
    let sent = inner.client.abort_multipart_upload().bucket(&inner.settings.bucket).key(object_key).upload_id(upload_id).send().await;
    if let Err(e) = sent {
        let f = S3Failure::from_sdk(&e);
        tracing::warn!(key, status = ?f.status, code = %f.code, "could not abort a multipart upload; the bucket's abort-incomplete-multipart rule or the sweeper must");
    }
}

/// Takes a part's buffer back once nothing else holds it.
fn recycle(spare: &mut Vec<BytesMut>, buffer: Bytes, keep: usize) {
    if spare.len() < keep {
        if let Ok(mut b) = buffer.try_into_mut() {
            b.clear();
            spare.push(b);
        }
    }
}

async fn join(task: JoinHandle<Result<(CompletedPart, Bytes), BlobError>>) -> Result<(CompletedPart, Bytes), BlobError> {
    task.await.map_err(|_| BlobError::Unavailable { step: "uploading a part (task ended)" })?
}

/// PutObjectRetention on one version; refused by the store's lock is `Locked`.
pub(crate) async fn put_retention(inner: &Inner, blob: BlobRef<'_>, retention: Retention) -> Result<(), BlobError> {
    let object_key = inner.object_key(blob.key)?;
    let _slot = inner.slot().await?;
    inner
        .client
        .put_object_retention()
        .bucket(&inner.settings.bucket)
        .key(object_key)
        .set_version_id(blob.version_id.map(str::to_owned))
        .retention(
            ObjectLockRetention::builder()
                .mode(retention_mode(retention.mode))
                .retain_until_date(DateTime::from(retention.retain_until))
                .build(),
        )
        .send()
        .await
        .map_err(locked_or("setting object retention", blob.key))?;
    Ok(())
}

#[async_trait]
impl BlobWriter for S3Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        if self.finished {
            return Err(BlobError::Unavailable { step: "writing after commit" });
        }
        self.size += chunk.len() as u64;
        let part_size = self.inner.settings.part_size;
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            // A full buffer goes out only once more data arrives: an object of exactly one
            // part's size is still a single PUT.
            if self.buf.len() >= part_size {
                let next = self.fresh_buffer();
                let full = std::mem::replace(&mut self.buf, next);
                self.send_part(full.freeze()).await?;
            }
            let n = rest.len().min(part_size - self.buf.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, sha256: &str) -> Result<StoredBlob, BlobError> {
        if self.finished {
            return Err(BlobError::Unavailable { step: "committing twice" });
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.abort_upload().await;
            return Err(BlobError::BadDigest);
        }
        self.finished = true;
        let result = if self.upload.is_some() { self.complete(sha256).await } else { self.put_single(sha256).await };
        match result {
            Ok(version_id) => Ok(StoredBlob { key: self.key.clone(), version_id, size: self.size }),
            Err(e) => {
                self.abort_upload().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) {
        self.finished = true;
        self.abort_upload().await;
    }

    /// With the object's PUT (Object Lock headers), or right after a multipart upload
    /// completes, before the commit returns.
    fn lock_on_commit(&mut self, retention: Retention) -> Result<(), BlobError> {
        self.lock = Retention::strongest(self.lock, Some(retention));
        Ok(())
    }
}

impl Drop for S3Writer {
    /// A writer dropped mid-upload (a cancelled task, a panic) still aborts its upload.
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else { return };
        for task in &upload.pending {
            task.abort();
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let inner = self.inner.clone();
        let key = self.key.clone();
        handle.spawn(async move { abort_multipart(&inner, &key, &upload.id).await });
    }
}
