//! API keys for machines. A key reads `vnak_<id>_<secret>`: the id (12 hex digits) names the
//! record, the secret (64 hex digits, 256 bits from the operating system's generator) proves
//! possession. The catalog keeps the secret's SHA-256 only: with 256 random bits a slow hash
//! adds nothing, and the check stays cheap on every request. It is sent as a bearer token.

use crate::{now_ms, AuthError};
use sha2::{Digest, Sha256};
use vna_archive::model::ApiKey;
use vna_archive::{Archive, Principal, PrincipalKind};

pub const API_KEY_PREFIX: &str = "vnak_";

/// A key just made: the record to store, and the one time its token is known.
pub struct NewApiKey {
    pub record: ApiKey,
    /// Shown once to the administrator; never stored.
    pub token: String,
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS generator failing is not something to work around.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut buf).expect("the operating system's random generator failed");
    hex::encode(buf)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A new key with these scopes and tenant grants (`*`: every tenant), valid until
/// `expires_at_ms` if given.
pub fn new_api_key(name: &str, scopes: Vec<String>, tenants: Vec<String>, expires_at_ms: Option<i64>) -> NewApiKey {
    let id = random_hex(6);
    let secret = random_hex(32);
    let record = ApiKey {
        id: id.clone(),
        secret_sha256: sha256_hex(&secret),
        name: name.to_owned(),
        scopes,
        tenants,
        created_at_ms: now_ms(),
        expires_at_ms,
        revoked_at_ms: None,
    };
    NewApiKey { record, token: format!("{API_KEY_PREFIX}{id}_{secret}") }
}

/// Splits a token into id and secret, checking their shape before any look-up.
fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(API_KEY_PREFIX)?.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex(id, 12) && hex(secret, 64)).then_some((id, secret))
}

/// Equal in time independent of where they differ (both are hex of equal length).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn verify(archive: &Archive, token: &str) -> Result<Principal, AuthError> {
    let (id, secret) = parse(token).ok_or(AuthError::Invalid("malformed API key"))?;
    let key = archive.api_key(id).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read API keys");
        AuthError::Unavailable
    })?;
    // Unknown, wrong secret, revoked and expired all read the same to the caller.
    let key = key.filter(|k| same(&k.secret_sha256, &sha256_hex(secret))).ok_or(AuthError::Invalid("unknown API key"))?;
    if !key.is_active(now_ms()) {
        return Err(AuthError::Invalid("unknown API key"));
    }
    Ok(principal(&key))
}

/// The principal an API key stands for.
pub(crate) fn principal(key: &ApiKey) -> Principal {
    let permissions = crate::permissions_from_scopes(key.scopes.iter().map(String::as_str));
    let tenants = if key.tenants.iter().any(|t| t == "*") { None } else { Some(key.tenants.clone()) };
    Principal::new(format!("api-key:{}", key.id), PrincipalKind::ApiKey, permissions, tenants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vna_archive::Permission;

    #[test]
    fn tokens_round_trip_and_only_the_hash_is_kept() {
        let k = new_api_key("scanner", vec!["system/ImagingStudy.c".into()], vec!["hug".into()], None);
        let (id, secret) = parse(&k.token).expect("well-formed");
        assert_eq!(id, k.record.id);
        assert_eq!(k.record.secret_sha256, sha256_hex(secret));
        assert!(!k.record.secret_sha256.contains(secret));
        let other = new_api_key("scanner", Vec::new(), Vec::new(), None);
        assert_ne!(other.token, k.token, "random");
        let p = principal(&k.record);
        assert_eq!(p.id, format!("api-key:{id}"));
        assert!(p.may(Permission::Write) && !p.may(Permission::Read));
        assert_eq!(p.tenants(), Some(&["hug".to_owned()][..]));
        let all = new_api_key("epr", vec!["system/ImagingStudy.read".into()], vec!["*".into()], None);
        assert_eq!(principal(&all.record).tenants(), None);
    }

    #[test]
    fn malformed_tokens() {
        let good = format!("{API_KEY_PREFIX}{}_{}", "a".repeat(12), "0".repeat(64));
        assert!(parse(&good).is_some());
        for bad in [
            format!("{API_KEY_PREFIX}{}_{}", "a".repeat(11), "0".repeat(64)),
            format!("{API_KEY_PREFIX}{}_{}", "A".repeat(12), "0".repeat(64)),
            format!("{API_KEY_PREFIX}{}{}", "a".repeat(12), "0".repeat(64)),
            format!("{API_KEY_PREFIX}{}_{}x", "a".repeat(12), "0".repeat(64)),
            "vnak_".to_owned(),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
