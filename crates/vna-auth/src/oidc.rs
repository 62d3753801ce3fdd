//! OAuth 2.0 bearer access tokens in JWT form (RFC 9068) from the hospital's OpenID Connect
//! provider. The provider's signing keys come from its JWKS (`jwks_uri` of the discovery
//! document, OpenID Connect Discovery 1.0 §4), cached; a token naming an unknown `kid`
//! triggers one refetch (no more often than [`KEY_REFETCH_INTERVAL`], so forged `kid`s cannot
//! make us hammer the provider), and the set is refreshed on a timer, so a key rotation needs
//! no restart. Verification is `jsonwebtoken`'s: signature, `iss` exactly, `aud` containing
//! ours, `exp` and `nbf` with a small leeway, the algorithm in our allowlist of asymmetric
//! ones and matching the key's (never `none`, never HMAC: a public key is not a secret).

use crate::{AuthError, ADMIN_SCOPE};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};
use vna_archive::{Principal, PrincipalKind};

/// The least time between two fetches of the key set caused by unknown `kid`s.
pub const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Algorithms a configuration may allow: RSA PKCS#1 v1.5, RSA-PSS, ECDSA, EdDSA.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The `iss` of tokens, exactly; discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// Our audience: a token's `aud` must contain it.
    pub audience: String,
    /// Where the keys are, if not from discovery.
    pub jwks_uri: Option<String>,
    /// Allowed `alg` values (names as in RFC 7518), each asymmetric.
    pub algorithms: Vec<String>,
    pub leeway: Duration,
    /// How often the key set is refreshed without being asked.
    pub refresh: Duration,
    /// The claim holding tenant grants (a string or an array; dotted for nested objects).
    /// `None`: a user sees every tenant. Set but absent from a token: the user sees none.
    pub tenant_claim: Option<String>,
    /// The claim holding roles (an array; dotted for nested objects, e.g. `realm_access.roles`).
    pub roles_claim: Option<String>,
    /// Scopes each role grants, added to the token's own.
    pub role_scopes: BTreeMap<String, Vec<String>>,
    /// PEM file of the CA that signs the provider's certificate, besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
    pub fetch_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("oidc.algorithms: {0} is not an allowed algorithm (RS256/384/512, PS256/384/512, ES256/384, EdDSA)")]
    Algorithm(String),
    #[error("oidc: {0} must be https (http only for a provider on this machine)")]
    Insecure(String),
    #[error("oidc.ca_file: cannot read it")]
    CaFile(#[source] std::io::Error),
    #[error("oidc.ca_file: not a PEM certificate")]
    CaPem(#[source] reqwest::Error),
    #[error("cannot build the HTTP client for the identity provider")]
    Client(#[source] reqwest::Error),
}

/// Only https, or http to a loopback host (a provider beside us, tests).
fn check_url(url: &str) -> Result<(), SetupError> {
    let loopback = ["http://127.0.0.1", "http://[::1]", "http://localhost"]
        .iter()
        .any(|p| url.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/'])));
    if url.starts_with("https://") || loopback {
        Ok(())
    } else {
        Err(SetupError::Insecure(url.to_owned()))
    }
}

struct Keys {
    by_kid: Vec<(Option<String>, Jwk)>,
    fetched: Option<Instant>,
}

pub(crate) struct Verifier {
    config: OidcConfig,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// Held while fetching, so that concurrent misses fetch once.
    fetching: Mutex<()>,
}

impl Verifier {
    pub(crate) fn new(config: OidcConfig) -> Result<Self, SetupError> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|name| {
                name.parse::<Algorithm>().ok().filter(|a| ASYMMETRIC.contains(a)).ok_or_else(|| SetupError::Algorithm(name.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err(SetupError::Algorithm("(none)".into()));
        }
        check_url(&config.issuer)?;
        if let Some(u) = &config.jwks_uri {
            check_url(u)?;
        }
        let mut http = reqwest::Client::builder().timeout(config.fetch_timeout).redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(SetupError::CaFile)?;
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).map_err(SetupError::CaPem)?);
        }
        let http = http.build().map_err(SetupError::Client)?;
        Ok(Verifier { config, algorithms, http, keys: RwLock::new(Keys { by_kid: Vec::new(), fetched: None }), fetching: Mutex::new(()) })
    }

    async fn fetch_json(&self, url: &str) -> Result<Value, AuthError> {
        check_url(url).map_err(|_| AuthError::Unavailable)?;
        let failed = |e: reqwest::Error| {
            tracing::warn!(error = %e, "cannot fetch from the identity provider");
            AuthError::Unavailable
        };
        let resp = self.http.get(url).send().await.map_err(failed)?.error_for_status().map_err(failed)?;
        resp.json().await.map_err(failed)
    }

    /// Fetches the key set (after discovery, if no `jwks_uri` is configured).
    async fn refetch(&self) -> Result<(), AuthError> {
        let uri = match &self.config.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let discovery = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
                let doc = self.fetch_json(&discovery).await?;
                if doc.get("issuer").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
                    tracing::warn!("the discovery document names another issuer than oidc.issuer");
                    return Err(AuthError::Unavailable);
                }
                doc.get("jwks_uri").and_then(Value::as_str).ok_or(AuthError::Unavailable)?.to_owned()
            }
        };
        let set: JwkSet = serde_json::from_value(self.fetch_json(&uri).await?).map_err(|_| AuthError::Unavailable)?;
        let by_kid: Vec<_> = set
            .keys
            .into_iter()
            .filter(|k| !matches!(&k.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature))
            .map(|k| (k.common.key_id.clone(), k))
            .collect();
        tracing::info!(keys = by_kid.len(), "identity provider keys fetched");
        *self.keys.write().await = Keys { by_kid, fetched: Some(Instant::now()) };
        Ok(())
    }

    /// The key for `kid` and `alg`, fetching the set when it is stale or, at most every
    /// [`KEY_REFETCH_INTERVAL`], when the key is unknown.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        for attempt in 0..2 {
            {
                let keys = self.keys.read().await;
                let fresh = keys.fetched.is_some_and(|t| t.elapsed() < self.config.refresh);
                if fresh || attempt == 1 {
                    if let Some(jwk) = pick(&keys.by_kid, kid, alg) {
                        return DecodingKey::from_jwk(jwk).map_err(|_| AuthError::Invalid("the provider's key is unusable"));
                    }
                    let recent = keys.fetched.is_some_and(|t| t.elapsed() < KEY_REFETCH_INTERVAL);
                    if attempt == 1 || recent {
                        return Err(AuthError::Invalid("signed with an unknown key"));
                    }
                }
            }
            let _one = self.fetching.lock().await;
            // Another request may have fetched while we waited.
            let stale = self.keys.read().await.fetched.is_none_or(|t| t.elapsed() >= KEY_REFETCH_INTERVAL);
            if stale {
                self.refetch().await?;
            }
        }
        Err(AuthError::Invalid("signed with an unknown key"))
    }

    pub(crate) async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("not a JWT"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid("signature algorithm not allowed"));
        }
        let key = self.key(header.kid.as_deref(), header.alg).await?;
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.set_issuer(&[&self.config.issuer]);
        v.set_audience(&[&self.config.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = self.config.leeway.as_secs();
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| AuthError::Invalid(reason(e.kind())))?;
        Ok(principal(&self.config, &data.claims))
    }
}

/// The key a token names: by `kid` when it has one, else the only key usable for `alg`.
/// A key declaring its own `alg` must agree with the token's.
fn pick<'a>(keys: &'a [(Option<String>, Jwk)], kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let fits = |k: &Jwk| k.common.key_algorithm.is_none_or(|ka| format!("{ka:?}") == format!("{alg:?}")) && family_fits(k, alg);
    match kid {
        Some(kid) => keys.iter().find(|(id, _)| id.as_deref() == Some(kid)).map(|(_, k)| k).filter(|k| fits(k)),
        None => {
            let mut usable = keys.iter().map(|(_, k)| k).filter(|k| fits(k));
            let first = usable.next()?;
            usable.next().is_none().then_some(first)
        }
    }
}

fn family_fits(k: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    matches!(
        (&k.algorithm, alg),
        (P::RSA(_), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512)
            | (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
            | (P::OctetKeyPair(_), Algorithm::EdDSA)
    )
}

fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "the token has expired",
        K::ImmatureSignature => "the token is not valid yet",
        K::InvalidIssuer => "the token is from another issuer",
        K::InvalidAudience => "the token is for another audience",
        K::InvalidSignature => "bad signature",
        K::MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss, aud, sub)",
        K::InvalidAlgorithm => "signature algorithm does not match the key",
        _ => "malformed token",
    }
}

/// A claim by dotted path (`realm_access.roles`).
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(claims, |v, part| v.get(part))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The principal of a verified token: scopes from `scope` (RFC 9068 §2.2.3, space-separated)
/// or `scp` (an array, as some providers send), plus those of its roles; tenants from the
/// configured claim. A token a client obtained for itself (client credentials: RFC 9068 §2.2
/// has `sub` equal to `client_id` then) names an application, `client:<id>`; any other a
/// person, `user:<sub>`.
fn principal(config: &OidcConfig, claims: &Value) -> Principal {
    let mut scopes = strings(claims.get("scope"));
    scopes.extend(strings(claims.get("scp")));
    if let Some(path) = &config.roles_claim {
        for role in strings(claim(claims, path)) {
            scopes.extend(config.role_scopes.get(&role).into_iter().flatten().cloned());
        }
    }
    let permissions = crate::permissions_from_scopes(scopes.iter().map(String::as_str));
    let tenants = config.tenant_claim.as_ref().map(|path| strings(claim(claims, path)));
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    if scopes.iter().any(|s| s == ADMIN_SCOPE) {
        tracing::debug!(sub, "administrator token");
    }
    let client = claims.get("client_id").and_then(Value::as_str);
    match client {
        Some(c) if c == sub => Principal::new(format!("client:{sub}"), PrincipalKind::Application, permissions, tenants),
        _ => Principal::new(format!("user:{sub}"), PrincipalKind::User, permissions, tenants),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vna_archive::Permission;

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example".into(),
            audience: "vna".into(),
            jwks_uri: None,
            algorithms: vec!["RS256".into()],
            leeway: Duration::from_secs(30),
            refresh: Duration::from_secs(3600),
            tenant_claim: Some("org.tenants".into()),
            roles_claim: Some("realm_access.roles".into()),
            role_scopes: BTreeMap::from([("radiologist".into(), vec!["user/ImagingStudy.rs".into()])]),
            ca_file: None,
            fetch_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn claims_to_principal() {
        let claims = serde_json::json!({
            "sub": "u-17", "scope": "openid vna.audit",
            "realm_access": {"roles": ["radiologist", "other"]},
            "org": {"tenants": ["hug/radiology"]}
        });
        let p = principal(&config(), &claims);
        assert_eq!(p.id, "user:u-17");
        assert_eq!(p.permissions().collect::<Vec<_>>(), vec![Permission::Read, Permission::Audit]);
        assert_eq!(p.tenants(), Some(&["hug/radiology".to_owned()][..]));
        let bare = principal(&config(), &serde_json::json!({"sub": "u-18", "scp": ["user/ImagingStudy.c"]}));
        assert_eq!(bare.permissions().collect::<Vec<_>>(), vec![Permission::Write]);
        assert_eq!(bare.tenants(), Some(&[][..]), "a configured tenant claim that is absent grants nothing");
        let open = principal(&OidcConfig { tenant_claim: None, ..config() }, &serde_json::json!({"sub": "u"}));
        assert_eq!(open.tenants(), None);
        let machine = principal(&config(), &serde_json::json!({"sub": "epr", "client_id": "epr"}));
        assert_eq!((machine.id.as_str(), machine.kind), ("client:epr", PrincipalKind::Application));
        let person = principal(&config(), &serde_json::json!({"sub": "alice", "client_id": "viewer"}));
        assert_eq!((person.id.as_str(), person.kind), ("user:alice", PrincipalKind::User));
    }

    #[test]
    fn setup_refuses_what_is_unsafe() {
        for alg in ["HS256", "none", "RS1", ""] {
            assert!(
                matches!(Verifier::new(OidcConfig { algorithms: vec![alg.into()], ..config() }), Err(SetupError::Algorithm(_))),
                "{alg}"
            );
        }
        assert!(matches!(Verifier::new(OidcConfig { algorithms: vec![], ..config() }), Err(SetupError::Algorithm(_))));
        assert!(matches!(Verifier::new(OidcConfig { issuer: "http://idp.example".into(), ..config() }), Err(SetupError::Insecure(_))));
        assert!(Verifier::new(OidcConfig { issuer: "http://127.0.0.1:9000/realm".into(), ..config() }).is_ok());
        assert!(check_url("http://localhost.evil.example").is_err());
    }
}
