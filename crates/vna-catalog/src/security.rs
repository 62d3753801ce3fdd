//! The tenant of a study, and API keys for machines (scanners, the patient record's back end): the catalog keeps a
//! SHA-256 of each secret, never the secret, with the key's scopes and tenant grants.

use crate::db::{AnyRow, Pool};
use crate::CatalogError;

/// An API key as recorded. `scopes` and `tenants` are stored space-separated; `tenants`
/// holds `*` for every tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The public part of the key, given back in listings and the audit trail.
    pub id: String,
    /// Lower-case hex SHA-256 of the secret part.
    pub secret_sha256: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub tenants: Vec<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl ApiKey {
    /// Usable at `now_ms`: not revoked and not expired.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

const COLUMNS: &str = "id, secret_sha256, name, scopes, tenants, created_at_ms, expires_at_ms, revoked_at_ms";

fn decode(row: &AnyRow) -> Result<ApiKey, CatalogError> {
    let mut c = row.cols();
    let words = |s: String| s.split_whitespace().map(str::to_owned).collect();
    Ok(ApiKey {
        id: c.text("api key id")?,
        secret_sha256: c.text("api key hash")?,
        name: c.text("api key name")?,
        scopes: words(c.text("api key scopes")?),
        tenants: words(c.text("api key tenants")?),
        created_at_ms: c.int("api key created")?,
        expires_at_ms: c.opt_int("api key expiry")?,
        revoked_at_ms: c.opt_int("api key revocation")?,
    })
}

pub(crate) const STUDY_TENANT_SQL: &str = "SELECT tenant FROM study WHERE study_uid = ?";

pub(crate) async fn study_tenant(pool: &Pool, study: &vna_dicom::uid::StudyUid) -> Result<Option<String>, CatalogError> {
    let rows = pool.fetch_all("read study tenant", STUDY_TENANT_SQL, &[study.as_str().into()]).await?;
    rows.first().map(|r| r.cols().text("study tenant")).transpose()
}

pub(crate) async fn create_api_key(pool: &Pool, key: &ApiKey) -> Result<(), CatalogError> {
    let mut tx = pool.begin_write().await?;
    tx.execute(
        "create api key",
        &format!("INSERT INTO api_key ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
        &[
            key.id.as_str().into(),
            key.secret_sha256.as_str().into(),
            key.name.as_str().into(),
            key.scopes.join(" ").into(),
            key.tenants.join(" ").into(),
            key.created_at_ms.into(),
            key.expires_at_ms.into(),
            key.revoked_at_ms.into(),
        ],
    )
    .await?;
    tx.commit().await
}

pub(crate) async fn api_key(pool: &Pool, id: &str) -> Result<Option<ApiKey>, CatalogError> {
    let rows = pool.fetch_all("read api key", &format!("SELECT {COLUMNS} FROM api_key WHERE id = ?"), &[id.into()]).await?;
    rows.first().map(decode).transpose()
}

pub(crate) async fn api_keys(pool: &Pool) -> Result<Vec<ApiKey>, CatalogError> {
    let rows = pool.fetch_all("list api keys", &format!("SELECT {COLUMNS} FROM api_key ORDER BY created_at_ms, id"), &[]).await?;
    rows.iter().map(decode).collect()
}

/// Marks the key revoked (the row stays, for the audit trail). False for an unknown id or a
/// key already revoked.
pub(crate) async fn revoke_api_key(pool: &Pool, id: &str, at_ms: i64) -> Result<bool, CatalogError> {
    let mut tx = pool.begin_write().await?;
    let n = tx
        .execute(
            "revoke api key",
            "UPDATE api_key SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL",
            &[at_ms.into(), id.into()],
        )
        .await?;
    tx.commit().await?;
    Ok(n == 1)
}
