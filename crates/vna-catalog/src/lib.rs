//! The archive's catalog, the source of truth for what is stored: patient / study / series /
//! instance rows, blob locations, frame offsets, versions and a change feed.
//!
//! One trait, [`Catalog`], with an SQLite backend (embedded default) and a PostgreSQL backend
//! (production); both pass the conformance suite in [`conformance`]. The catalog knows nothing
//! of HTTP, DIMSE or blob stores; it stores locations it is given.

pub mod conformance;
mod db;
mod migrations;
pub mod model;
pub mod postgres;
pub mod query;
mod read;
mod register;
mod sqlbuild;
pub mod sqlite;
mod translate;

pub use model::*;
pub use postgres::PostgresCatalog;
pub use query::*;
pub use sqlite::SqliteCatalog;

use async_trait::async_trait;

/// Everything the archive asks of a catalog backend.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Records a stored object atomically: patient/study/series rows upserted (latest values
    /// win), the instance version inserted, frame index written and a change appended, in one
    /// transaction. Duplicate detection (same SOP Instance UID and SHA-256 as the current
    /// version) and the version policy are applied inside that transaction.
    async fn register(&self, new: &NewInstance, policy: VersionPolicy) -> Result<RegisterOutcome, CatalogError>;

    /// The current version of an instance, by SOP Instance UID alone.
    async fn current_instance(&self, sop: &vna_dicom::uid::SopInstanceUid) -> Result<Option<InstanceRow>, CatalogError>;

    /// Every recorded version of an instance, oldest first.
    async fn instance_versions(&self, sop: &vna_dicom::uid::SopInstanceUid) -> Result<Vec<InstanceRow>, CatalogError>;

    /// Current instances within a scope, ordered by series number, series UID, instance
    /// number, SOP Instance UID. Empty when nothing matches.
    async fn instances_in(&self, scope: &Scope) -> Result<Vec<InstanceRow>, CatalogError>;

    /// Stored DICOM JSON of instance versions by primary key, in the order of `pks`
    /// (missing pks are skipped).
    async fn metadata(&self, pks: &[i64]) -> Result<Vec<(i64, String)>, CatalogError>;

    /// How the frames of an instance version are laid out, restricted to the requested
    /// 1-based frame numbers (in request order). `Ok(None)` for an unknown pk; a frame number
    /// out of range yields `CatalogError::FrameOutOfRange`.
    async fn frames(&self, pk: i64, numbers: &[u32]) -> Result<Option<Vec<Vec<ByteRange>>>, CatalogError>;

    /// Patients having a current instance that matches `q` (patient keys on the patient,
    /// lower-level keys on any of its current instances), ordered by Patient ID, issuer.
    async fn query_patients(&self, q: &Query) -> Result<Vec<PatientRow>, CatalogError>;
    async fn query_studies(&self, q: &Query) -> Result<Vec<StudyRow>, CatalogError>;
    async fn query_series(&self, q: &Query) -> Result<Vec<SeriesRow>, CatalogError>;
    async fn query_instances(&self, q: &Query) -> Result<Vec<InstanceRow>, CatalogError>;

    /// Changes with `seq > after`, oldest first, at most `limit`.
    async fn changes_since(&self, after: i64, limit: u32) -> Result<Vec<Change>, CatalogError>;

    /// Number of current instances (health, tests, import summary).
    async fn count_instances(&self) -> Result<i64, CatalogError>;
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

/// Both backends share one implementation over [`db::Pool`]; this wires a backend type to it.
macro_rules! impl_catalog {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::Catalog for $ty {
            async fn register(
                &self,
                new: &$crate::NewInstance,
                policy: $crate::VersionPolicy,
            ) -> Result<$crate::RegisterOutcome, $crate::CatalogError> {
                self.registrar.register(new, policy).await
            }
            async fn current_instance(
                &self,
                sop: &vna_dicom::uid::SopInstanceUid,
            ) -> Result<Option<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::current_instance(&self.pool, sop).await
            }
            async fn instance_versions(
                &self,
                sop: &vna_dicom::uid::SopInstanceUid,
            ) -> Result<Vec<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::instance_versions(&self.pool, sop).await
            }
            async fn instances_in(&self, scope: &$crate::Scope) -> Result<Vec<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::instances_in(&self.pool, scope).await
            }
            async fn metadata(&self, pks: &[i64]) -> Result<Vec<(i64, String)>, $crate::CatalogError> {
                $crate::read::metadata(&self.pool, pks).await
            }
            async fn frames(&self, pk: i64, numbers: &[u32]) -> Result<Option<Vec<Vec<$crate::ByteRange>>>, $crate::CatalogError> {
                $crate::read::frames(&self.pool, pk, numbers).await
            }
            async fn query_patients(&self, q: &$crate::Query) -> Result<Vec<$crate::PatientRow>, $crate::CatalogError> {
                $crate::read::query_patients(&self.pool, q).await
            }
            async fn query_studies(&self, q: &$crate::Query) -> Result<Vec<$crate::StudyRow>, $crate::CatalogError> {
                $crate::read::query_studies(&self.pool, q).await
            }
            async fn query_series(&self, q: &$crate::Query) -> Result<Vec<$crate::SeriesRow>, $crate::CatalogError> {
                $crate::read::query_series(&self.pool, q).await
            }
            async fn query_instances(&self, q: &$crate::Query) -> Result<Vec<$crate::InstanceRow>, $crate::CatalogError> {
                $crate::read::query_instances(&self.pool, q).await
            }
            async fn changes_since(&self, after: i64, limit: u32) -> Result<Vec<$crate::Change>, $crate::CatalogError> {
                $crate::read::changes_since(&self.pool, after, limit).await
            }
            async fn count_instances(&self) -> Result<i64, $crate::CatalogError> {
                $crate::read::count_instances(&self.pool).await
            }
        }
    };
}
pub(crate) use impl_catalog;
