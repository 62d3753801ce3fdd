//! The archive's catalog, the source of truth for what is stored: patient / study / series /
//! instance rows, blob locations, frame offsets, versions and a change feed.
//!
//! One trait, [`Catalog`], with an SQLite backend (embedded default) and a PostgreSQL backend
//! (production); both pass the conformance suite in [`conformance`]. The catalog knows nothing
//! of HTTP, DIMSE or blob stores; it stores locations it is given.
//!
//! # How it is built
//!
//! `Catalog`: `register` (one transaction: patient/study/series upsert, instance version, frame
//! pieces, metadata JSON, change-feed row; duplicate detection by SHA-256 and the version policy
//! inside it), reads by scope, frame lookup, queries and the change feed. One SQL layer serves both
//! backends (`db.rs` wraps pools and rows, `sqlbuild.rs` binds every value, `translate.rs` turns the
//! query model into SQL; the write side is `writer.rs`, the group commit, running `register.rs`
//! per instance; the read side `read.rs`); `backend.rs` wires both backend types to these modules, and `sqlite.rs` and `postgres.rs` only connect.
//!
//! Registrations go through one writer per process (`writer::Registrar`), a **group commit**:
//! callers queue their `NewInstance`; the writer takes everything queued when it becomes free (at
//! most 64), records it in one transaction (when one registration fails, the batch is rolled
//! back and each of its jobs runs again alone, so only that one gets its error), waits for the
//! flush of each registration's object if it still runs ([`Durable`],
//! [`Catalog::register_after`]), commits once, and only then answers. It never waits for a batch to fill, so an idle archive commits each
//! store alone; batches form exactly when commits queue. The patient/study/series rows of the
//! previous registration are reused when their values are identical (the images of one
//! series), within a batch and across batches while nobody else has written (SQLite's
//! `data_version`, PostgreSQL's change-feed head). If the commit fails, every registration of the batch gets the error and none was
//! recorded. On SQLite the writer is a thread of its own with its own `rusqlite` connection to the
//! file (same pragmas: WAL, `synchronous = FULL`, foreign keys, busy timeout), driving the same
//! `register_in` through `db::Tx::Local` (futures that are ready at once, run by
//! `futures::executor::block_on`): SQLx runs each statement on a connection thread, and those two
//! hand-offs per statement had cost 1.4 ms of the writer's time per instance; losers of `BEGIN
//! IMMEDIATE` also slept in SQLite's busy handler (1, 2, 5, 10… ms). Reads stay on the SQLx pool.
//! On PostgreSQL (and in-memory SQLite) the writer is a task over the pool; every batch takes the
//! change-feed advisory lock first and holds it to commit, so batches of all nodes are serial:
//! that alone orders registers of one SOP UID (even the first, with no row to lock yet) and keeps
//! change-feed order equal to commit order, with no per-SOP lock and no lock to deadlock on.
//!
//! **Visibility** is decided in the statement that reads. Every read that can return patient
//! data takes a [`Visibility`] (tenant grants, where `hug` covers `hug/radiology`, and the one
//! study, series or instance of a signed link) and `translate::visible` turns it into SQL
//! conditions beside the query's own, so rows, counters, paging and lookups by UID all see the
//! same subset; nothing is filtered afterwards. Whether an instance version is there at all is
//! one function, `translate::live` (the current version, unless an IHE IOCM rejection note hid
//! it and the reader's `Visibility::rejected` does not ask for those too), used by every read
//! and counter, so a state that hides an instance is added in one place. A registration that
//! carries a `RejectionNote` records what it names (`rejection`: also UIDs not received yet,
//! applied on arrival) and hides those versions of the named study in the note's tenant, in its
//! own transaction, each with an `instance-rejected` change.
//! A study has the tenant of its first instance; a registration naming another one is
//! `RegisterOutcome::TenantConflict` and writes nothing. API keys are kept as the SHA-256 of
//! their secret with their scopes and tenant grants (`security.rs`).
//!
//! Each backend has its own migrations (`migrations/{sqlite,postgres}`), embedded in the
//! binary. `query` is the query model shared by QIDO-RS and C-FIND (PS3.4 §C.2.2.2 matching
//! types). `conformance` is one suite, `catalog_conformance_tests!`, run against both backends.
//!
//! Levels: patient (C-FIND Patient Root only: `query_patients` → `PatientRow` with
//! NumberOfPatientRelatedStudies/Series/Instances), study, series, instance. Every level sees only
//! current instance versions: a patient, study or series exists for queries while it has one, and
//! its counters count only those; lower-level keys select the higher-level rows that have a
//! matching current instance. Patients come ordered by the `(patient_id, issuer, orphan_study)`
//! unique index.

mod audit;
mod backend;
pub mod conformance;
mod db;
mod expiry;
mod jobs;
mod migrations;
pub mod model;
pub mod postgres;
pub mod query;
mod read;
mod register;
mod rejection;
mod report;
mod security;
mod sqlbuild;
pub mod sqlite;
mod translate;
mod writer;

pub use audit::{AuditEvent, AuditQuery, AuditRecord};
pub use expiry::{Expiry, ExpiryOutcome, TierMove, Tombstone};
pub use jobs::{JobFailure, JobQuery, JobRow, JobState, NewJob, Progress, Renewal};
pub use model::*;
pub use postgres::PostgresCatalog;
pub use query::*;
pub use report::{NewReport, StoredReport};
pub use security::ApiKey;
pub use sqlite::SqliteCatalog;

use async_trait::async_trait;

/// Everything the archive asks of a catalog backend.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Records a stored object atomically: patient/study/series rows upserted (latest values
    /// win), the instance version inserted, frame index written and a change appended, in one
    /// transaction. Duplicate detection (same SOP Instance UID and SHA-256 as the current
    /// version) and the version policy are applied inside that transaction.
    async fn register(&self, new: &NewInstance, policy: VersionPolicy) -> Result<RegisterOutcome, CatalogError> {
        self.register_after(new, policy, Durable::ready()).await
    }
    /// [`Self::register`] of an object whose flush may still be running: the statements run
    /// meanwhile, and the commit that records the row waits for `durable` (an object is durable
    /// before a committed row names it; its flush overlaps the registration instead of preceding
    /// it). When the flush fails nothing is recorded: [`CatalogError::Unflushed`].
    async fn register_after(&self, new: &NewInstance, policy: VersionPolicy, durable: Durable) -> Result<RegisterOutcome, CatalogError>;

    /// The current version of an instance, by SOP Instance UID alone.
    async fn current_instance(&self, sop: &vna_dicom::uid::SopInstanceUid, v: &Visibility) -> Result<Option<InstanceRow>, CatalogError>;

    /// Every recorded version of an instance, oldest first.
    async fn instance_versions(&self, sop: &vna_dicom::uid::SopInstanceUid, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError>;
    /// Every version of each of `sops`, ordered by SOP Instance UID then version: the versions
    /// of a page of instances in one query.
    async fn versions_of(&self, sops: &[vna_dicom::uid::SopInstanceUid], v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError>;

    /// Current instances within a scope, ordered by series number, series UID, instance
    /// number, SOP Instance UID. Empty when nothing matches.
    async fn instances_in(&self, scope: &Scope, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError>;

    /// Stored DICOM JSON of instance versions by primary key, in the order of `pks`
    /// (missing pks are skipped). Pks come from rows a visibility-checked read returned.
    async fn metadata(&self, pks: &[i64]) -> Result<Vec<(i64, String)>, CatalogError>;

    /// How the frames of an instance version are laid out, restricted to the requested
    /// 1-based frame numbers (in request order). `Ok(None)` for an unknown pk; a frame number
    /// out of range yields `CatalogError::FrameOutOfRange`.
    async fn frames(&self, pk: i64, numbers: &[u32]) -> Result<Option<Vec<Vec<ByteRange>>>, CatalogError>;

    /// Patients having a current instance that matches `q` (patient keys on the patient,
    /// lower-level keys on any of its current instances), ordered by Patient ID, issuer.
    async fn query_patients(&self, q: &Query, v: &Visibility) -> Result<Vec<PatientRow>, CatalogError>;
    async fn query_studies(&self, q: &Query, v: &Visibility) -> Result<Vec<StudyRow>, CatalogError>;
    async fn query_series(&self, q: &Query, v: &Visibility) -> Result<Vec<SeriesRow>, CatalogError>;
    async fn query_instances(&self, q: &Query, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError>;
    /// The current instances matching `q` (its level, limit and offset aside) with a primary
    /// key above `after_pk`, in key order, at most `limit`: keyset pages over a large match.
    async fn query_instances_after(&self, q: &Query, after_pk: i64, limit: u32, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError>;

    /// SOP Instance UIDs rejected by IOCM rejection notes in the tenants `v` sees, oldest
    /// rejection first (administrators; received or not yet).
    async fn rejections(&self, v: &Visibility, limit: u32, offset: u32) -> Result<Vec<RejectionRecord>, CatalogError>;

    /// Changes with `seq > after`, oldest first, at most `limit`.
    async fn changes_since(&self, after: i64, limit: u32) -> Result<Vec<Change>, CatalogError>;
    /// The sequence number of the latest change (0 when none): the head a follower's lag is
    /// measured against.
    async fn last_change_seq(&self) -> Result<i64, CatalogError>;

    /// Number of current instances (health, tests, import summary).
    async fn count_instances(&self) -> Result<i64, CatalogError>;
    /// How many (series, SOP Class) pairs and studies have a maintained live-instance count
    /// (what query counters read) that differs from a count of their instances: 0 when the
    /// counts are true (`vna verify`, tests).
    async fn count_drift(&self) -> Result<i64, CatalogError>;
    /// The highest instance version key so far (0 when empty): jobs split the key space by it.
    async fn last_instance_key(&self) -> Result<i64, CatalogError>;

    /// The latest study date (DA, `YYYYMMDD`) among the studies of the patient with this ID and
    /// issuer, whoever may see them; `None` when none has a date. Lifecycle retentions count
    /// from the patient's last study.
    async fn latest_study_date(&self, patient_id: &str, issuer: &str) -> Result<Option<String>, CatalogError>;

    /// The tenant a study was given by its first instance; `None` for an unknown study.
    /// Ingest asks before committing a blob, so that a refused object leaves none behind.
    async fn study_tenant(&self, study: &vna_dicom::uid::StudyUid) -> Result<Option<String>, CatalogError>;

    /// What a store settles before it commits its object: the tenant of the study, if recorded,
    /// and the instance's current version, whoever may see it. The embedded catalog answers on
    /// the caller's thread from a read connection of its own, without two queries' thread
    /// hand-offs (profiled: a quarter of the server's CPU per small C-STORE instance).
    async fn before_store(
        &self,
        study: &vna_dicom::uid::StudyUid,
        sop: &vna_dicom::uid::SopInstanceUid,
    ) -> Result<(Option<String>, Option<InstanceRow>), CatalogError> {
        Ok((self.study_tenant(study).await?, self.current_instance(sop, &Visibility::ALL).await?))
    }

    /// Records a new API key; an id already taken is an error.
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), CatalogError>;
    /// The key with this id, active or not.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKey>, CatalogError>;
    /// Every key, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKey>, CatalogError>;
    /// Revokes a key; false when it is unknown or already revoked.
    async fn revoke_api_key(&self, id: &str, at_ms: i64) -> Result<bool, CatalogError>;

    /// Queues a background job; returns its id.
    async fn enqueue_job(&self, job: &NewJob) -> Result<i64, CatalogError>;
    /// Queues `jobs`, one run of the schedule `name` for period number `slot`, unless a run for
    /// that slot or a later one was already queued (by any node) or a job of `busy_kinds` is
    /// still queued or running. Returns the new jobs' ids, `None` when nothing was queued. All
    /// or nothing: the slot and the jobs commit together.
    async fn enqueue_scheduled(
        &self,
        name: &str,
        slot: i64,
        busy_kinds: &[String],
        jobs: &[NewJob],
    ) -> Result<Option<Vec<i64>>, CatalogError>;
    /// Takes the oldest claimable job of one of `kinds` for `owner` until `now_ms + lease_ms`:
    /// a queued job that is due, or a running one whose lease lapsed (its owner died). At most
    /// one owner holds a job at a time.
    async fn claim_job(&self, owner: &str, kinds: &[String], now_ms: i64, lease_ms: i64) -> Result<Option<JobRow>, CatalogError>;
    /// Extends a held lease and records progress (and failures); `held: false` when the lease
    /// is no longer the caller's.
    async fn renew_job(&self, id: i64, owner: &str, now_ms: i64, lease_ms: i64, progress: &Progress) -> Result<Renewal, CatalogError>;
    /// Ends a held job as done, failed or cancelled with its outcome; false when not held.
    async fn finish_job(
        &self,
        id: i64,
        owner: &str,
        state: JobState,
        outcome: &str,
        progress: &Progress,
        now_ms: i64,
    ) -> Result<bool, CatalogError>;
    /// Gives a held job back to the queue with its progress (shutdown); false when not held.
    async fn release_job(&self, id: i64, owner: &str, progress: &Progress) -> Result<bool, CatalogError>;
    /// Cancels a queued job at once, or asks a running one to stop; its state afterwards
    /// (`None`: no such job).
    async fn cancel_job(&self, id: i64, now_ms: i64) -> Result<Option<JobState>, CatalogError>;
    async fn job(&self, id: i64) -> Result<Option<JobRow>, CatalogError>;
    /// Jobs, newest first.
    async fn jobs(&self, q: &JobQuery) -> Result<Vec<JobRow>, CatalogError>;
    /// What a job could not handle, oldest first.
    async fn job_failures(&self, id: i64, limit: u32, offset: u32) -> Result<Vec<JobFailure>, CatalogError>;

    /// Current instances `v` sees with a primary key above `after_pk`, in key order (a keyset
    /// page for jobs that walk the catalog while it changes).
    async fn instances_after(&self, after_pk: i64, limit: u32, v: &Visibility) -> Result<Vec<InstanceRow>, CatalogError>;
    /// Removes every version of an instance, leaving a tombstone for each and an
    /// `instance-expired` change, in one transaction; `None` (nothing done) when its versions
    /// are no longer those named.
    async fn expire_instance(&self, e: &Expiry) -> Result<ExpiryOutcome, CatalogError>;
    /// Records (`on`) or clears that a legal hold may be on the object of the instance version
    /// `pk`: recorded before the hold is placed in the store, cleared after it is lifted there,
    /// so that an expiry (which refuses a version so marked, in its own transaction) never
    /// races a hold. False when the version is no longer in the catalog.
    async fn mark_legal_hold(&self, pk: i64, on: bool) -> Result<bool, CatalogError>;
    /// Switches an instance version to its verified copy on another tier, with a `moved`
    /// tombstone for the old object and an `instance-moved` change, in one transaction; `None`
    /// (nothing done) when the version is no longer where the move found it.
    async fn move_version(&self, m: &TierMove) -> Result<Option<Tombstone>, CatalogError>;
    /// Records that these instance versions were read at `at_ms` (one batch of a node's
    /// accesses; an earlier time never overwrites a later one); how many moved forward.
    async fn record_accesses(&self, pks: &[i64], at_ms: i64) -> Result<u64, CatalogError>;
    /// Records that a tombstone's object was destroyed; false when it already was.
    async fn mark_purged(&self, tombstone_pk: i64, now_ms: i64) -> Result<bool, CatalogError>;
    /// Tombstones whose object still waits to be destroyed, after `after_pk`, oldest first.
    async fn unpurged_tombstones(&self, after_pk: i64, limit: u32) -> Result<Vec<Tombstone>, CatalogError>;
    /// What remains of the expired versions of a SOP Instance UID in the tenants `v` sees.
    async fn tombstones(&self, sop: &vna_dicom::uid::SopInstanceUid, v: &Visibility) -> Result<Vec<Tombstone>, CatalogError>;

    /// Records a report sent for a study, with its `report-added` change (and its audit event)
    /// in one transaction; its key.
    async fn add_report(&self, report: &NewReport) -> Result<i64, CatalogError>;
    /// A study's reports sent through the API, oldest first.
    async fn reports_of(&self, study_uid: &str) -> Result<Vec<StoredReport>, CatalogError>;
    /// The Study Instance UID of the report sent through the API with key `pk`, if any.
    async fn report_study(&self, pk: i64) -> Result<Option<String>, CatalogError>;
    /// Appends a `search-reindex` change: every node's indexer rebuilds its index from the
    /// catalog when it meets it. Its seq.
    async fn request_search_reindex(&self, at_ms: i64) -> Result<i64, CatalogError>;
    /// Studies by key after `after_pk`, in key order: (key, Study Instance UID); with or
    /// without current instances.
    async fn studies_after(&self, after_pk: i64, limit: u32) -> Result<Vec<(i64, String)>, CatalogError>;

    /// Appends audit events (in the writer's next group commit); returns once committed.
    async fn record_audit(&self, events: Vec<AuditEvent>) -> Result<(), CatalogError>;
    /// Audit events matching `q`, oldest first.
    async fn audit_events(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, CatalogError>;
}

/// One variant per failing step, each with its cause. Messages carry no PHI.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot connect to the catalog database")]
    Connect(#[source] sqlx::Error),
    #[error("catalog migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("catalog query failed during {op}")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A statement of the SQLite writer's own connection failed.
    #[error("catalog query failed during {op}")]
    Local {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the catalog holds a value it cannot read back ({what})")]
    Corrupt { what: &'static str },
    #[error("frame {number} is out of range (the instance has {count} frames)")]
    FrameOutOfRange { number: u32, count: u32 },
    /// The group commit this registration was part of failed (the cause is shared by every
    /// registration of the batch; none of them was recorded).
    #[error("the catalog transaction this registration was grouped into failed")]
    Batch(#[source] std::sync::Arc<CatalogError>),
    #[error("the catalog writer task has stopped")]
    WriterGone,
    /// The flush of the registration's object failed ([`Durable`]): no row names it.
    #[error("the registration's object could not be made durable: {0}")]
    Unflushed(std::sync::Arc<str>),
}

impl CatalogError {
    /// True when retrying later may succeed (pool exhausted, connection lost, lock timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            CatalogError::Connect(_) => true,
            CatalogError::Batch(cause) => cause.is_transient(),
            CatalogError::Local { source, .. } => {
                matches!(source.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
            }
            CatalogError::Query { source, .. } => {
                matches!(source, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
                    || matches!(source, sqlx::Error::Database(db) if db.message().contains("locked") || db.message().contains("busy")
                // PostgreSQL: deadlock detected, serialization failure.
                || matches!(db.code().as_deref(), Some("40P01" | "40001")))
            }
            _ => false,
        }
    }
}
