//! The one ingest pipeline every front end uses (STOW-RS, C-STORE, import).
//!
//! A front end obtains an [`IngestBody`] from [`Archive::begin_store`] and pushes the object's
//! bytes into it as they arrive. The pipeline runs in its own task: each chunk is hashed
//! (SHA-256), parsed (header, bulk positions, frame offsets) and written to the blob store in
//! one pass. Only when the blob is durable is the catalog row committed, and only when that
//! commit returns is the store acknowledged. Because the pipeline is a separate task, a client
//! that disconnects after sending the last byte cannot leave a half-done store behind.

use crate::extract::extract;
use crate::{Archive, ArchiveError, Permission, Principal};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use vna_blob::BlobWriter;
use vna_catalog::{BlobLocation, InstanceRow, NewInstance, RegisterOutcome, VersionPolicy};
use vna_dicom::parse::StreamParser;
use vna_dicom::uid::{SopClassUid, SopInstanceUid, StudyUid};

/// Per-store options from the front end.
#[derive(Debug, Clone)]
pub struct StoreRequest {
    /// Who sends the object: needs [`Permission::Write`] and the tenant the object is given.
    pub principal: Principal,
    /// DIMSE: the calling AE title, for tenancy rules.
    pub calling_ae: Option<String>,
    /// STOW-RS `POST /studies/{study}`: the instance must belong to this study.
    pub expected_study: Option<StudyUid>,
    /// C-STORE: the data set must carry the SOP Class and Instance UIDs of the command
    /// (PS3.4 §B.2.3, status A900 otherwise).
    pub expected_sop: Option<(SopClassUid, SopInstanceUid)>,
}

impl StoreRequest {
    pub fn new(principal: Principal) -> Self {
        StoreRequest { principal, calling_ae: None, expected_study: None, expected_sop: None }
    }
}

/// What happened to an acknowledged store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStatus {
    /// First version of this SOP instance.
    Stored,
    /// Identical to the current version: nothing changed.
    Duplicate,
    /// A new current version replaced the previous one (kept as history).
    Replaced,
    /// Recorded as a non-current version; the existing one stays current.
    KeptAsPriorVersion,
}

#[derive(Debug, Clone)]
pub struct Stored {
    pub status: StoreStatus,
    /// The catalog row of the instance now current for this SOP Instance UID.
    pub instance: InstanceRow,
}

enum Msg {
    Data(Bytes),
    End,
}

/// The sending side of a store in progress. Dropping it without [`IngestBody::finish`] aborts
/// the store: nothing is kept.
pub struct IngestBody {
    tx: mpsc::Sender<Msg>,
    done: oneshot::Receiver<Result<Stored, ArchiveError>>,
}

impl IngestBody {
    /// Pushes the next bytes. An error means the pipeline already failed; call
    /// [`IngestBody::finish`] to learn why.
    pub async fn send(&mut self, chunk: Bytes) -> Result<(), ()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.tx.send(Msg::Data(chunk)).await.map_err(|_| ())
    }

    /// Marks the end of the object without waiting for the outcome, so that the caller can go
    /// on receiving the next object while this one is made durable.
    pub async fn end(&mut self) {
        let _ = self.tx.send(Msg::End).await;
    }

    /// Marks the end of the object and waits until it is durable and catalogued (or failed).
    pub async fn finish(mut self) -> Result<Stored, ArchiveError> {
        self.end().await;
        self.wait().await
    }

    /// Waits for the outcome: after [`IngestBody::end`], or after a failed
    /// [`IngestBody::send`]. Without `end`, the store is aborted.
    pub async fn wait(self) -> Result<Stored, ArchiveError> {
        drop(self.tx);
        self.done.await.unwrap_or(Err(ArchiveError::Task { step: "running the ingest pipeline" }))
    }
}

impl Archive {
    /// Starts storing one object. Fails at once with `Forbidden` when the sender may not
    /// store, and with `Busy` when the concurrent-store cap is reached (backpressure at the
    /// entrance instead of an unbounded queue).
    pub fn begin_store(self: &Arc<Self>, request: StoreRequest) -> Result<IngestBody, ArchiveError> {
        if let Err(refused) = request.principal.require(Permission::Write) {
            // Recorded beside the refusal (the store had not begun; nothing waits on it).
            let (archive, who) = (self.clone(), request.principal.clone());
            tokio::spawn(async move { archive.audit_refusal(&who, "write permission refused").await });
            return Err(refused);
        }
        let permit = self.ingest_slots.clone().try_acquire_owned().map_err(|_| ArchiveError::Busy)?;
        // A few chunks of slack lets the network and the disk overlap; more only buys memory.
        let (tx, rx) = mpsc::channel(8);
        let (done_tx, done) = oneshot::channel();
        let archive = self.clone();
        tokio::spawn(async move {
            let result = archive.run_pipeline(rx, request, permit).await;
            if let Err(e) = &result {
                match e.class() {
                    crate::ErrorClass::Internal | crate::ErrorClass::Busy => {
                        tracing::warn!(error = %e, source = ?std::error::Error::source(e), "store failed")
                    }
                    _ => tracing::info!(error = %e, "store rejected"),
                }
            }
            let _ = done_tx.send(result);
        });
        Ok(IngestBody { tx, done })
    }

    async fn run_pipeline(
        &self,
        mut rx: mpsc::Receiver<Msg>,
        request: StoreRequest,
        _permit: OwnedSemaphorePermit,
    ) -> Result<Stored, ArchiveError> {
        let mut writer = self.default_store().create().await.map_err(ArchiveError::blob("creating the object"))?;
        let received = receive(&mut rx, writer.as_mut(), self.config.max_object_bytes, self.config.parse_limits).await;
        let (parsed, sha256, size) = match received {
            Ok(r) => r,
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        };
        if let Err(defect) = vna_dicom::validate::validate(&parsed) {
            writer.abort().await;
            return Err(ArchiveError::Invalid(defect));
        }
        let bulk_threshold = self.config.parse_limits.bulk_threshold as u64;
        // Big headers (whole-slide per-frame groups, many fragments) make JSON generation slow:
        // keep them off the async runtime. A small one is done here, cheaper than the hand-off.
        let tenancy = self.config.tenancy.clone();
        let (ae, who) = (request.calling_ae.clone(), request.principal.clone());
        let facts = move |parsed: &vna_dicom::parse::ParsedObject| {
            extract(parsed, bulk_threshold, |ds, charset| tenancy.decide(ds, charset, ae.as_deref(), &who))
        };
        let extracted = if small_header(&parsed.dataset) {
            facts(&parsed)
        } else {
            tokio::task::spawn_blocking(move || facts(&parsed))
                .await
                .map_err(|_| ArchiveError::Task { step: "extracting attributes" })
                .and_then(|r| r)
        };
        let extracted = match extracted {
            Ok(x) => x,
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        };
        if let Some(expected) = &request.expected_study {
            if *expected != extracted.study.study_uid {
                writer.abort().await;
                let sop = crate::SopRef { class: extracted.instance.sop_class_uid.clone(), instance: extracted.instance.sop_uid.clone() };
                return Err(ArchiveError::StudyMismatch { sop });
            }
        }
        if let Some((class, instance)) = &request.expected_sop {
            if *class != extracted.instance.sop_class_uid || *instance != extracted.instance.sop_uid {
                writer.abort().await;
                return Err(ArchiveError::SopMismatch { expected: crate::SopRef { class: class.clone(), instance: instance.clone() } });
            }
        }
        if let Some(outcome) = self.settle_before_commit(&request.principal, &extracted, &sha256).await.transpose() {
            writer.abort().await;
            return outcome;
        }
        // The lifecycle policies' retention, applied by the store at commit.
        let e = &extracted;
        let lock = self.retention_at_write(&e.patient, &e.study, &e.series, &e.instance, &e.tenant, crate::now_ms()).await;
        match lock {
            Ok(None) => {}
            Ok(Some((retention, rules))) => {
                if let Err(err) = writer.lock_on_commit(retention) {
                    writer.abort().await;
                    tracing::warn!(?rules, "the lifecycle policies lock this object but its tier cannot");
                    return Err(ArchiveError::blob("locking the object as the lifecycle policies ask")(err));
                }
            }
            Err(err) => {
                writer.abort().await;
                return Err(err);
            }
        }
        // The object's flush runs on while the catalog records its row; the row's commit waits
        // for it (`Catalog::register_after`), so the object is durable first.
        let (blob, flush) = writer.commit_flushing(&sha256).await.map_err(ArchiveError::blob("making the object durable"))?;
        let durable = vna_catalog::Durable::after(async move { flush.wait().await.map_err(|e| e.to_string()) });
        let mut audit = crate::audit::store_event(&request.principal, &extracted.patient.patient_id, extracted.study.study_uid.as_str());
        if let (Some(e), Some(note)) = (audit.as_mut(), &extracted.rejects) {
            // What a rejection note does is part of its store's record: the studies it names.
            e.detail = format!("IOCM rejection note stored ({}: {} instances named)", note.code, note.references.len());
            let named: std::collections::BTreeSet<&str> = note.references.iter().map(|r| r.study_uid.as_str()).collect();
            for study in named {
                if !e.studies.iter().any(|s| s == study) {
                    e.studies.push(study.to_owned());
                }
            }
        }
        let new = NewInstance {
            patient: extracted.patient,
            study: extracted.study,
            series: extracted.series,
            instance: extracted.instance,
            blob: BlobLocation {
                tier: self.config.default_tier.clone(),
                key: blob.key.clone(),
                version_id: blob.version_id.clone(),
                size,
                sha256,
            },
            frames: extracted.frames,
            tenant: extracted.tenant,
            audit,
            metadata: extracted.metadata,
            rejects: extracted.rejects,
        };
        let outcome = match self.catalog.register_after(&new, self.config.version_policy, durable).await {
            Ok(o) => o,
            Err(e) => {
                // Not acknowledged; the blob is unreferenced. If this delete fails too, the
                // orphan sweeper finds it.
                self.discard(&blob).await;
                return Err(ArchiveError::catalog("registering the instance")(e));
            }
        };
        match outcome {
            RegisterOutcome::Stored { instance, replaced_previous, .. } => {
                let status = if replaced_previous { StoreStatus::Replaced } else { StoreStatus::Stored };
                Ok(Stored { status, instance })
            }
            RegisterOutcome::StoredAsPriorVersion { .. } => {
                let current = self
                    .catalog
                    .current_instance(&new.instance.sop_uid, &vna_catalog::Visibility::ALL)
                    .await
                    .map_err(ArchiveError::catalog("reading the current version"))?
                    .ok_or(ArchiveError::NotFound { what: "current instance version" })?;
                Ok(Stored { status: StoreStatus::KeptAsPriorVersion, instance: current })
            }
            RegisterOutcome::Duplicate { existing } => {
                self.discard(&blob).await;
                Ok(Stored { status: StoreStatus::Duplicate, instance: existing })
            }
            RegisterOutcome::Conflict { .. } => {
                self.discard(&blob).await;
                let sop = crate::SopRef { class: new.instance.sop_class_uid.clone(), instance: new.instance.sop_uid.clone() };
                Err(ArchiveError::VersionConflict { sop })
            }
            RegisterOutcome::TenantConflict => {
                // Another store created the study in between (the check before commit saw none).
                self.discard(&blob).await;
                Err(ArchiveError::TenantConflict)
            }
        }
    }

    /// A re-sent identical object, a changed one the policy refuses, and one its sender may
    /// not write (its tenant, the tenant of the instance it would replace, a study recorded in
    /// another tenant) are answered without committing the blob: on a store with Object Lock a
    /// committed blob could never be removed again. `None`: go on and commit. (Two concurrent
    /// first sends still meet in `register`, which decides for good.)
    async fn settle_before_commit(
        &self,
        who: &Principal,
        x: &crate::extract::Extracted,
        sha256: &str,
    ) -> Result<Option<Stored>, ArchiveError> {
        let instance = &x.instance;
        if !who.may_write_tenant(&x.tenant) {
            self.audit_refusal(who, "store into a tenant not granted").await;
            return Err(ArchiveError::Forbidden { needed: Permission::Write });
        }
        let catalog = |step| ArchiveError::catalog(step);
        // The archive's own look-ups: what exists decides, whoever may see it.
        let (recorded, existing) = self
            .catalog
            .before_store(&x.study.study_uid, &instance.sop_uid)
            .await
            .map_err(catalog("looking up the study and the instance"))?;
        if recorded.is_some_and(|t| t != x.tenant) {
            return Err(ArchiveError::TenantConflict);
        }
        let Some(existing) = existing else { return Ok(None) };
        if !who.may_write_tenant(&existing.tenant) {
            self.audit_refusal(who, "replacing an instance of a tenant not granted").await;
            return Err(ArchiveError::Forbidden { needed: Permission::Write });
        }
        if existing.blob.sha256 == sha256 {
            return Ok(Some(Stored { status: StoreStatus::Duplicate, instance: existing }));
        }
        if self.config.version_policy == VersionPolicy::Reject {
            let sop = crate::SopRef { class: instance.sop_class_uid.clone(), instance: instance.sop_uid.clone() };
            return Err(ArchiveError::VersionConflict { sop });
        }
        Ok(None)
    }

    /// Removes a committed but unreferenced blob, that very version for good.
    async fn discard(&self, blob: &vna_blob::StoredBlob) {
        if let Err(e) = self.default_store().delete(blob.into()).await {
            tracing::warn!(key = %blob.key, error = %e, "could not delete an unreferenced blob; the sweeper will");
        }
    }
}

/// A header whose attributes and frame index take microseconds: at most 400 elements and
/// fragments, sequence items included.
fn small_header(dataset: &vna_dicom::dataset::DataSet) -> bool {
    use vna_dicom::dataset::{DataSet, Value};
    fn within(d: &DataSet, budget: &mut usize) -> bool {
        d.elements.iter().all(|e| {
            let weight = 1 + if let Value::Fragments(f) = &e.value { f.items.len() } else { 0 };
            let Some(left) = budget.checked_sub(weight) else { return false };
            *budget = left;
            if let Value::Sequence(items) = &e.value {
                items.iter().all(|i| within(i, budget))
            } else {
                true
            }
        })
    }
    within(dataset, &mut 400)
}

/// Streams the body into the writer while hashing and parsing it.
async fn receive(
    rx: &mut mpsc::Receiver<Msg>,
    writer: &mut dyn BlobWriter,
    max_bytes: u64,
    limits: vna_dicom::parse::ParseLimits,
) -> Result<(vna_dicom::parse::ParsedObject, String, u64), ArchiveError> {
    let mut hasher = Sha256::new();
    let mut parser = StreamParser::new(limits);
    let mut size = 0u64;
    loop {
        match rx.recv().await {
            Some(Msg::Data(chunk)) => {
                size += chunk.len() as u64;
                if size > max_bytes {
                    return Err(ArchiveError::TooLarge { limit: max_bytes });
                }
                hasher.update(&chunk);
                parser.feed(&chunk).map_err(ArchiveError::NotDicom)?;
                writer.write(chunk).await.map_err(ArchiveError::blob("writing the object"))?;
            }
            Some(Msg::End) => break,
            None => return Err(ArchiveError::BodyAborted),
        }
    }
    let parsed = parser.finish().map_err(ArchiveError::NotDicom)?;
    Ok((parsed, hex::encode(hasher.finalize()), size))
}
