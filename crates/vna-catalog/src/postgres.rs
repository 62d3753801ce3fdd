//! The PostgreSQL backend, shared by every node of a scaled-out deployment.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::db::Pool;
use crate::writer::Registrar;
use crate::CatalogError;

/// Key of the transaction-level advisory lock (one-bigint form) every registration batch holds
/// from its start until commit, so that writers are serial and `seq` order is commit order.
/// Public so that operators (and tests) can recognise it in `pg_locks`.
pub const CHANGE_FEED_LOCK_KEY: i64 = 0x564E_4143_4847; // "VNACHG"

/// Catalog in a PostgreSQL database (production, several nodes).
pub struct PostgresCatalog {
    pub(crate) pool: Pool,
    registrar: Registrar,
}

impl PostgresCatalog {
    /// Connects with a `postgres://` URL and brings the schema up to date. Migrations take
    /// an advisory lock, so nodes starting together apply them once.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, CatalogError> {
        let options: PgConnectOptions = url.parse().map_err(CatalogError::Connect)?;
        Self::connect_with(options, max_connections).await
    }

    /// Like [`PostgresCatalog::connect`] with options built in code (e.g. a password read
    /// from a secret file, or a `search_path` through [`PgConnectOptions::options`]).
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<Self, CatalogError> {
        let pool =
            PgPoolOptions::new().max_connections(max_connections.max(1)).connect_with(options).await.map_err(CatalogError::Connect)?;
        crate::migrations::migrator(crate::migrations::POSTGRES).await?.run(&pool).await.map_err(CatalogError::Migrate)?;
        let pool = Pool::Postgres(pool);
        Ok(PostgresCatalog { registrar: Registrar::start(pool.clone()), pool })
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl PostgresCatalog {
    async fn settle_before_store(
        &self,
        study: &vna_dicom::uid::StudyUid,
        sop: &vna_dicom::uid::SopInstanceUid,
    ) -> Result<(Option<String>, Option<crate::InstanceRow>), CatalogError> {
        crate::read::before_store(&self.pool, study, sop).await
    }
}

crate::backend::impl_catalog!(PostgresCatalog);
