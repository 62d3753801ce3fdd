//! API keys as the catalog records them: looked up to authenticate a machine, and managed by
//! administrators (`vna apikey`, the admin API). Making and checking the secret is the
//! identity layer's business (`vna-auth`); the archive only keeps the record.

use crate::{Archive, ArchiveError, Permission, Principal};
use vna_catalog::ApiKey;

impl Archive {
    /// The key with this id, for authentication (nobody is known yet, so no principal).
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKey>, ArchiveError> {
        self.catalog.api_key(id).await.map_err(ArchiveError::catalog("reading an API key"))
    }

    pub async fn create_api_key(&self, who: &Principal, key: &ApiKey) -> Result<(), ArchiveError> {
        self.require(who, Permission::Admin).await?;
        self.catalog.create_api_key(key).await.map_err(ArchiveError::catalog("recording an API key"))?;
        let detail = format!("api key {} created (scopes: {}; tenants: {})", key.id, key.scopes.join(" "), key.tenants.join(" "));
        self.audit_security(who, crate::audit::USER_SECURITY_ATTRIBUTES_CHANGED, 0, &detail).await;
        Ok(())
    }

    pub async fn api_keys(&self, who: &Principal) -> Result<Vec<ApiKey>, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        self.catalog.api_keys().await.map_err(ArchiveError::catalog("listing API keys"))
    }

    /// `NotFound` for an unknown key or one already revoked.
    pub async fn revoke_api_key(&self, who: &Principal, id: &str, at_ms: i64) -> Result<(), ArchiveError> {
        self.require(who, Permission::Admin).await?;
        match self.catalog.revoke_api_key(id, at_ms).await.map_err(ArchiveError::catalog("revoking an API key"))? {
            true => {
                self.audit_security(who, crate::audit::USER_SECURITY_ATTRIBUTES_CHANGED, 0, &format!("api key {id} revoked")).await;
                Ok(())
            }
            false => Err(ArchiveError::NotFound { what: "active API key" }),
        }
    }
}
