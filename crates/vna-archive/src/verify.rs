//! `vna verify`: re-reads stored objects and compares their size and SHA-256 with what the
//! catalog recorded at ingest (integrity is provable).

use crate::Found;
use crate::{Archive, ArchiveError, Permission, Principal};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use vna_catalog::{InstanceRow, Level, Query, Scope};

/// What re-reading one object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact,
    /// The store has no such object (version).
    Missing,
    SizeMismatch {
        recorded: u64,
        found: u64,
    },
    HashMismatch,
    /// The store could not be read; says nothing about the object.
    Unreadable {
        reason: String,
    },
}

impl Archive {
    /// Reads the object of `row` to the end, hashing it on the way.
    pub async fn verify_instance(&self, row: &Found) -> Verdict {
        let mut stream = match self.open(row, None).await {
            Ok(s) => s,
            Err(ArchiveError::Blob { source: vna_blob::BlobError::NotFound { .. }, .. }) => return Verdict::Missing,
            Err(e) => return Verdict::Unreadable { reason: e.to_string() },
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            match stream.try_next().await {
                Ok(Some(chunk)) => {
                    size += chunk.len() as u64;
                    hasher.update(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Verdict::Unreadable { reason: e.to_string() },
            }
        }
        if size != row.blob.size {
            return Verdict::SizeMismatch { recorded: row.blob.size, found: size };
        }
        if hex::encode(hasher.finalize()) != row.blob.sha256 {
            return Verdict::HashMismatch;
        }
        Verdict::Intact
    }

    /// A page of every current instance the administrator sees, in catalog order.
    pub async fn all_instances(&self, who: &Principal, offset: u32, limit: u32) -> Result<Vec<Found>, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let q = Query { level: Level::Instance, filters: Vec::new(), limit: Some(limit), offset };
        let rows = self.catalog.query_instances(&q, &who.seeing_rejected()).await.map_err(ArchiveError::catalog("listing instances"))?;
        Ok(Found::all(rows))
    }

    /// Current instances (rejected ones too) with a catalog key above `after_pk`, in key order:
    /// a page that stays right while instances arrive or go (lifecycle plans and jobs).
    pub async fn all_instances_after(&self, who: &Principal, after_pk: i64, limit: u32) -> Result<Vec<Found>, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let rows = self
            .catalog
            .instances_after(after_pk, limit, &who.seeing_rejected())
            .await
            .map_err(ArchiveError::catalog("listing instances"))?;
        Ok(Found::all(rows))
    }

    /// What remains of the expired versions of an instance (administrators, auditors' questions
    /// about an object that is gone): what it was, where, why and when it went, and when its
    /// object was destroyed.
    pub async fn tombstones(
        &self,
        who: &Principal,
        sop: &vna_dicom::uid::SopInstanceUid,
    ) -> Result<Vec<crate::model::Tombstone>, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        self.catalog.tombstones(sop, who.visibility()).await.map_err(ArchiveError::catalog("reading tombstones"))
    }

    /// What IOCM rejection notes rejected in the tenants `who` sees, oldest first, whether the
    /// instance has arrived or not (administrators). Audited as a query of those studies.
    pub async fn rejections(&self, who: &Principal, limit: u32, offset: u32) -> Result<Vec<crate::model::RejectionRecord>, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let records =
            self.catalog.rejections(who.visibility(), limit, offset).await.map_err(ArchiveError::catalog("listing rejections"))?;
        let mut e = crate::audit::event(who, crate::EventId::Query, "E", &[], "rejected instances listed");
        let studies: std::collections::BTreeSet<&str> = records.iter().map(|r| r.study_uid.as_str()).collect();
        e.studies = studies.into_iter().map(str::to_owned).collect();
        self.audited(who, e).await?;
        Ok(records)
    }

    /// Current instances of a study, for verification.
    pub async fn study_instances(&self, who: &Principal, study: vna_dicom::uid::StudyUid) -> Result<Vec<Found>, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        self.instances(who, &Scope { study, series: None, instance: None }).await
    }
}

/// What a legal hold by query did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HoldOutcome {
    pub matched: u64,
    pub changed: u64,
    pub failed: u64,
}

/// Retention and legal hold of stored instances, as the blob store enforces them.
impl Archive {
    /// The protection of the current version of an instance.
    pub async fn protection(
        &self,
        who: &Principal,
        sop: &vna_dicom::uid::SopInstanceUid,
    ) -> Result<(InstanceRow, vna_blob::Protection, vna_blob::Locking), ArchiveError> {
        let row = self.current(who, sop).await?;
        let store = self.store_of(&row.blob.tier)?;
        let p = store.protection(crate::blob_ref(&row)).await.map_err(ArchiveError::blob("reading the object's protection"))?;
        Ok((row, p, store.locking()))
    }

    /// Places or lifts a legal hold on the current version of an instance.
    pub async fn set_legal_hold(&self, who: &Principal, sop: &vna_dicom::uid::SopInstanceUid, on: bool) -> Result<(), ArchiveError> {
        let row = self.current(who, sop).await?;
        self.hold_version(&row, on).await?;
        tracing::info!(tier = %row.blob.tier, key = %row.blob.key, on, "legal hold changed");
        // DICOM Instances Accessed, Update (PS3.15 A.5.3.3): the object's protection changed.
        let what = if on { "legal hold placed" } else { "legal hold lifted" };
        self.audited(who, crate::audit::event(who, crate::EventId::InstancesAccessed, "U", &[&row], what)).await?;
        Ok(())
    }

    /// Places or lifts a legal hold on the current version of every instance `who` sees that
    /// matches `filters` (a patient, a study, a series: QIDO-RS keys), at most `max` of them
    /// (more is refused before anything changes). One audit event names every patient and
    /// study concerned. Returns how many were matched and changed; an object whose store refuses
    /// is counted as failed and the others go on.
    pub async fn set_legal_hold_where(
        &self,
        who: &Principal,
        filters: Vec<crate::query::Filter>,
        on: bool,
        max: u32,
    ) -> Result<HoldOutcome, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let q = Query { level: Level::Instance, filters, limit: Some(max.saturating_add(1)), offset: 0 };
        // A hold covers what the patient has here, rejected objects included.
        let rows =
            self.catalog.query_instances(&q, &who.seeing_rejected()).await.map_err(ArchiveError::catalog("selecting instances to hold"))?;
        if rows.len() as u64 > u64::from(max) {
            return Err(ArchiveError::TooManyObjects { limit: u64::from(max) });
        }
        let mut outcome = HoldOutcome { matched: rows.len() as u64, ..HoldOutcome::default() };
        for row in &rows {
            match self.hold_version(row, on).await {
                Ok(()) => outcome.changed += 1,
                Err(e) => {
                    tracing::warn!(tier = %row.blob.tier, key = %row.blob.key, error = %e, "legal hold not changed on an object");
                    outcome.failed += 1;
                }
            }
        }
        if !rows.is_empty() {
            let refs: Vec<&InstanceRow> = rows.iter().collect();
            let what =
                format!("legal hold {} on {} of {} instances", if on { "placed" } else { "lifted" }, outcome.changed, outcome.matched);
            self.audited(who, crate::audit::event(who, crate::EventId::InstancesAccessed, "U", &refs, what)).await?;
        }
        Ok(outcome)
    }

    /// Places or lifts the legal hold on the object of one instance version, with the catalog
    /// knowing first: the hold is recorded there before the store places it, and cleared there
    /// after the store lifts it. An expiry refuses a version so recorded, in the transaction
    /// that would remove it, so a hold and an expiry racing never leave a held object without
    /// its catalog row: either the hold is recorded first and the expiry refuses, or the
    /// expiry removed the row first and the hold finds nothing to hold (`NotFound`).
    pub(crate) async fn hold_version(&self, row: &InstanceRow, on: bool) -> Result<(), ArchiveError> {
        let store = self.store_of(&row.blob.tier)?;
        if on && !self.catalog.mark_legal_hold(row.pk, true).await.map_err(ArchiveError::catalog("recording a legal hold"))? {
            return Err(ArchiveError::NotFound { what: "instance version (expired meanwhile)" });
        }
        store.set_legal_hold(crate::blob_ref(row), on).await.map_err(ArchiveError::blob("setting a legal hold"))?;
        if !on {
            self.catalog.mark_legal_hold(row.pk, false).await.map_err(ArchiveError::catalog("recording a legal hold lifted"))?;
        }
        Ok(())
    }

    /// The current version of an instance the administrator `who` sees.
    async fn current(&self, who: &Principal, sop: &vna_dicom::uid::SopInstanceUid) -> Result<InstanceRow, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let row =
            self.catalog.current_instance(sop, &who.seeing_rejected()).await.map_err(ArchiveError::catalog("looking up an instance"))?;
        row.ok_or(ArchiveError::NotFound { what: "instance" })
    }
}
