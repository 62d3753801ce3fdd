//! Identity for the archive's front ends: who is calling, proved by an OpenID Connect access
//! token, an API key or nothing (where the configuration allows it), turned into a
//! [`vna_archive::Principal`]. What the principal may then do is checked by the archive, not
//! here. This crate knows no HTTP framework: a front end passes the `Authorization` header's
//! value and the peer address, and renders [`AuthError`] in its protocol.
//!
//! # How it is built
//!
//! `oidc.rs` verifies JWT access tokens with `jsonwebtoken` against the provider's JWKS
//! (discovered from the issuer, cached, refetched once on an unknown `kid` at most every
//! [`KEY_REFETCH_INTERVAL`], and on a timer), with the exact issuer and audience, `exp` and
//! `nbf` with a small leeway, and an allowlist of asymmetric algorithms. `scopes.rs` maps SMART
//! scopes (v1 `.read`/`.write`, v2 `.cruds`) and `vna.admin`/`vna.audit` to permissions.
//! `apikey.rs` makes and checks API keys (`vnak_<id>_<secret>`: 256 random bits, only their
//! SHA-256 recorded). `limit.rs` refuses a source that failed too often, before any work.

mod apikey;
mod limit;
mod link;
mod oidc;
mod scopes;

pub use apikey::{new_api_key, NewApiKey, API_KEY_PREFIX};
pub use limit::FailureLimit;
pub use link::{Link, LinkError, LinkSigner, LINK_PREFIX, MAX_LINK_TTL, MIN_SECRET_BYTES};
pub use oidc::{OidcConfig, KEY_REFETCH_INTERVAL};
pub use scopes::{permissions_from_scopes, ADMIN_SCOPE, AUDIT_SCOPE};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
pub(crate) use vna_archive::now_ms;
use vna_archive::{Archive, Permission, Principal, PrincipalKind};

/// When a caller without credentials is let in, as a principal with every permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    /// Never: every request needs a token or a key.
    Off,
    /// From the loopback address only (the default: a fresh install serves only this machine).
    /// Behind a reverse proxy on the same host every client is loopback: turn it off there.
    Loopback,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub oidc: Option<OidcConfig>,
    pub anonymous: Anonymous,
    pub failures: FailureLimit,
    /// Signed links (`vnal_…`); `None`: no link is accepted or made.
    pub links: Option<Arc<LinkSigner>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { oidc: None, anonymous: Anonymous::Loopback, failures: FailureLimit::default(), links: None }
    }
}

/// Why a caller is not authenticated. Messages are safe to send back: they say what is wrong
/// with the credential, never what the archive holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Missing,
    #[error("invalid credentials: {0}")]
    Invalid(&'static str),
    #[error("too many failed attempts; retry later")]
    RateLimited { retry_after: Duration },
    /// The identity provider's keys cannot be fetched: the token may well be valid.
    #[error("the identity provider cannot be reached to check the token")]
    Unavailable,
}

/// Turns credentials into principals. One per server, shared by its front ends.
pub struct Authenticator {
    archive: Arc<Archive>,
    config: AuthConfig,
    oidc: Option<oidc::Verifier>,
    failures: limit::Failures,
}

impl Authenticator {
    pub fn new(archive: Arc<Archive>, config: AuthConfig) -> Result<Arc<Self>, oidc::SetupError> {
        let oidc = config.oidc.clone().map(oidc::Verifier::new).transpose()?;
        let failures = limit::Failures::new(config.failures);
        Ok(Arc::new(Authenticator { archive, config, oidc, failures }))
    }

    /// The principal of a request with `authorization` (the header's value, if any) from
    /// `peer`. A source over its failure budget is refused before anything is checked.
    pub async fn authenticate(&self, authorization: Option<&str>, peer: IpAddr) -> Result<Principal, AuthError> {
        self.failures.check(peer)?;
        let result = self.verify(authorization, peer).await;
        self.settle("dicomweb", &result, peer).await;
        result
    }

    /// The principal of a bearer credential (an access token or an API key, as it would follow
    /// `Bearer `) presented through `interface` other than HTTP, e.g. in a DIMSE User Identity
    /// sub-item. Signed links are for HTTP only. Failures count and are audited as over HTTP.
    pub async fn authenticate_token(&self, interface: &'static str, credential: &str, peer: IpAddr) -> Result<Principal, AuthError> {
        self.failures.check(peer)?;
        let credential = credential.trim();
        let result = match credential.starts_with(LINK_PREFIX) {
            true => Err(AuthError::Invalid("a signed link opens web pages only")),
            false if credential.is_empty() => Err(AuthError::Invalid("an empty credential")),
            false => self.verify_bearer(credential).await,
        };
        self.settle(interface, &result, peer).await;
        result
    }

    /// Counts and audits a failure (PS3.15 A.5.3.12); the refusal stands whether or not it is
    /// recorded.
    async fn settle(&self, interface: &'static str, result: &Result<Principal, AuthError>, peer: IpAddr) {
        if let Err(AuthError::Invalid(why)) = result {
            tracing::info!(%peer, interface, why, "authentication failed");
            self.failures.record(peer);
            if let Err(e) = self.archive.audit_failed_login(interface, &peer.to_canonical().to_string(), why).await {
                tracing::warn!(error = %e, "a failed authentication could not be audited");
            }
        }
    }

    async fn verify(&self, authorization: Option<&str>, peer: IpAddr) -> Result<Principal, AuthError> {
        let Some(value) = authorization else {
            return match self.config.anonymous {
                Anonymous::Loopback if peer.to_canonical().is_loopback() => Ok(anonymous()),
                _ => Err(AuthError::Missing),
            };
        };
        let (scheme, credential) = value.trim().split_once(' ').ok_or(AuthError::Invalid("malformed Authorization header"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Invalid("only Bearer credentials are accepted"));
        }
        self.verify_bearer(credential.trim()).await
    }

    async fn verify_bearer(&self, credential: &str) -> Result<Principal, AuthError> {
        if credential.starts_with(API_KEY_PREFIX) {
            return apikey::verify(&self.archive, credential).await;
        }
        if credential.starts_with(LINK_PREFIX) {
            let signer = self.config.links.as_ref().ok_or(AuthError::Invalid("signed links are not enabled"))?;
            return signer.verify(credential, now_ms() / 1000);
        }
        match &self.oidc {
            Some(v) => v.verify(credential).await,
            None => Err(AuthError::Invalid("no identity provider is configured for bearer tokens")),
        }
    }
}

impl Authenticator {
    /// The signer of links, when links are enabled.
    pub fn links(&self) -> Option<&Arc<LinkSigner>> {
        self.config.links.as_ref()
    }
}

/// A caller let in without credentials (see [`Anonymous`]).
pub fn anonymous() -> Principal {
    Principal::new("anonymous", PrincipalKind::Anonymous, Permission::ALL, None)
}
