//! Schema migrations embedded in the binary, one list per backend, run at open/connect.
//!
//! Built at runtime through `MigrationSource` rather than `sqlx::migrate!`, which would pull
//! in sqlx's proc-macro crate (and a second build of both drivers) for no gain.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::CatalogError;

/// (version, description, SQL). Append only: applied migrations are checksummed.
type Embedded = &'static [(i64, &'static str, &'static str)];

pub(crate) const SQLITE: Embedded = &[
    (1, "catalog", include_str!("../migrations/sqlite/0001_catalog.sql")),
    (2, "multi frame", include_str!("../migrations/sqlite/0002_multi_frame.sql")),
    (3, "study counters index", include_str!("../migrations/sqlite/0003_study_counters_index.sql")),
    (4, "security", include_str!("../migrations/sqlite/0004_security.sql")),
    (5, "audit", include_str!("../migrations/sqlite/0005_audit.sql")),
    (6, "rejection", include_str!("../migrations/sqlite/0006_rejection.sql")),
    (7, "jobs", include_str!("../migrations/sqlite/0007_jobs.sql")),
    (8, "tombstone", include_str!("../migrations/sqlite/0008_tombstone.sql")),
    (9, "last access", include_str!("../migrations/sqlite/0009_last_access.sql")),
    (10, "job schedule", include_str!("../migrations/sqlite/0010_job_schedule.sql")),
    (11, "legal hold", include_str!("../migrations/sqlite/0011_legal_hold.sql")),
    (12, "institution", include_str!("../migrations/sqlite/0012_institution.sql")),
    (13, "report", include_str!("../migrations/sqlite/0013_report.sql")),
    (14, "series counts", include_str!("../migrations/sqlite/0014_series_counts.sql")),
    (15, "study live", include_str!("../migrations/sqlite/0015_study_live.sql")),
    // (16 is PostgreSQL's alone: its registration counts without a trigger.)
    (17, "study aggregates", include_str!("../migrations/sqlite/0017_study_aggregates.sql")),
];
pub(crate) const POSTGRES: Embedded = &[
    (1, "catalog", include_str!("../migrations/postgres/0001_catalog.sql")),
    (2, "multi frame", include_str!("../migrations/postgres/0002_multi_frame.sql")),
    (3, "study counters index", include_str!("../migrations/postgres/0003_study_counters_index.sql")),
    (4, "security", include_str!("../migrations/postgres/0004_security.sql")),
    (5, "audit", include_str!("../migrations/postgres/0005_audit.sql")),
    (6, "rejection", include_str!("../migrations/postgres/0006_rejection.sql")),
    (7, "jobs", include_str!("../migrations/postgres/0007_jobs.sql")),
    (8, "tombstone", include_str!("../migrations/postgres/0008_tombstone.sql")),
    (9, "last access", include_str!("../migrations/postgres/0009_last_access.sql")),
    (10, "job schedule", include_str!("../migrations/postgres/0010_job_schedule.sql")),
    (11, "legal hold", include_str!("../migrations/postgres/0011_legal_hold.sql")),
    (12, "institution", include_str!("../migrations/postgres/0012_institution.sql")),
    (13, "report", include_str!("../migrations/postgres/0013_report.sql")),
    (14, "series counts", include_str!("../migrations/postgres/0014_series_counts.sql")),
    (15, "study live", include_str!("../migrations/postgres/0015_study_live.sql")),
    (16, "counts at insert", include_str!("../migrations/postgres/0016_counts_at_insert.sql")),
    (17, "study aggregates", include_str!("../migrations/postgres/0017_study_aggregates.sql")),
];

#[derive(Debug)]
struct Source(Embedded);

impl MigrationSource<'static> for Source {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        let migrations = self
            .0
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(*version, Cow::Borrowed(*description), MigrationType::Simple, Cow::Borrowed(*sql), false)
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

pub(crate) async fn migrator(list: Embedded) -> Result<Migrator, CatalogError> {
    Migrator::new(Source(list)).await.map_err(CatalogError::Migrate)
}
