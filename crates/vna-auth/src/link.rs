//! Signed links for the patient record: short-lived, read-only access to one study, series or
//! instance, so that the EPR can embed a thumbnail or open a viewer without holding a user's
//! credentials. A link reads `vnal_<payload>_<mac>`: the payload (hex) names the link id, its
//! expiry and its scope; the MAC is HMAC-SHA256 (RFC 2104) of the payload under the archive's
//! link secret, shared by every node. The principal a link stands for may only read, and sees
//! only its scope (`Principal::limited_to`, applied in the catalog query); its id is what the
//! audit trail records.

use crate::AuthError;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use vna_archive::model::Scope;
use vna_archive::{Permission, Principal, PrincipalKind};
use vna_dicom::uid::{SeriesUid, SopInstanceUid, StudyUid};

pub const LINK_PREFIX: &str = "vnal_";
/// The longest a link may live: long enough for a report opened in the morning and read in the
/// afternoon, short enough that a leaked link soon opens nothing.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(24 * 3600);
/// Bytes of secret at least.
pub const MIN_SECRET_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("the link secret must hold at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("a link lives at most {} hours", MAX_LINK_TTL.as_secs() / 3600)]
    TooLong,
}

/// A link as made: its id (for the audit trail), token and expiry (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: String,
    pub token: String,
    pub expires_at: i64,
}

/// Makes and checks links with the archive's link secret.
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    pub fn new(secret: &[u8]) -> Result<Self, LinkError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(LinkError::ShortSecret);
        }
        Ok(LinkSigner { key: secret.to_vec() })
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        // HMAC takes a key of any length.
        #[allow(clippy::expect_used)]
        let mut m = HmacSha256::new_from_slice(&self.key).expect("hmac accepts any key length");
        m.update(payload);
        m
    }

    /// A link to `scope` valid for `ttl` from `now` (Unix seconds).
    pub fn sign(&self, scope: &Scope, ttl: Duration, now: i64) -> Result<Link, LinkError> {
        if ttl > MAX_LINK_TTL {
            return Err(LinkError::TooLong);
        }
        let id = crate::apikey::random_hex(8);
        let expires_at = now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let dash = |u: Option<&str>| u.unwrap_or("-").to_owned();
        let payload = format!(
            "v1|{id}|{expires_at}|{}|{}|{}",
            scope.study.as_str(),
            dash(scope.series.as_ref().map(SeriesUid::as_str)),
            dash(scope.instance.as_ref().map(SopInstanceUid::as_str))
        );
        let mac = hex::encode(self.mac(payload.as_bytes()).finalize().into_bytes());
        Ok(Link { id, token: format!("{LINK_PREFIX}{}_{mac}", hex::encode(payload)), expires_at })
    }

    /// The principal of a link at `now`: read-only, limited to its scope. Every defect reads
    /// the same to the caller.
    pub fn verify(&self, token: &str, now: i64) -> Result<Principal, AuthError> {
        let bad = AuthError::Invalid("invalid or expired link");
        let (payload_hex, mac_hex) = token.strip_prefix(LINK_PREFIX).and_then(|t| t.split_once('_')).ok_or(bad.clone())?;
        let payload = hex::decode(payload_hex).map_err(|_| bad.clone())?;
        let mac = hex::decode(mac_hex).map_err(|_| bad.clone())?;
        self.mac(&payload).verify_slice(&mac).map_err(|_| bad.clone())?;
        // Signed by us: the fields are ours, but parsed strictly all the same.
        let text = String::from_utf8(payload).map_err(|_| bad.clone())?;
        let fields: Vec<&str> = text.split('|').collect();
        let [version, id, expires, study, series, instance] = fields[..] else { return Err(bad) };
        let expires_at: i64 = expires.parse().map_err(|_| bad.clone())?;
        if version != "v1" || now >= expires_at {
            return Err(bad);
        }
        let scope = Scope {
            study: StudyUid::new(study).map_err(|_| bad.clone())?,
            series: (series != "-").then(|| SeriesUid::new(series)).transpose().map_err(|_| bad.clone())?,
            instance: (instance != "-").then(|| SopInstanceUid::new(instance)).transpose().map_err(|_| bad.clone())?,
        };
        Ok(Principal::new(format!("link:{id}"), PrincipalKind::Link, [Permission::Read], None).limited_to(scope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(series: Option<&str>) -> Scope {
        Scope { study: StudyUid::new("1.2.3").unwrap(), series: series.map(|s| SeriesUid::new(s).unwrap()), instance: None }
    }

    #[test]
    fn a_link_opens_its_scope_until_it_expires() {
        let s = LinkSigner::new(&[7u8; 32]).unwrap();
        let link = s.sign(&scope(Some("1.2.3.4")), Duration::from_secs(60), 1000).unwrap();
        assert_eq!(link.expires_at, 1060);
        let who = s.verify(&link.token, 1059).unwrap();
        assert_eq!(who.id, format!("link:{}", link.id));
        assert_eq!(who.permissions().collect::<Vec<_>>(), vec![Permission::Read]);
        assert_eq!(who.visibility().only, Some(scope(Some("1.2.3.4"))));
        assert_eq!(s.verify(&link.token, 1060), Err(AuthError::Invalid("invalid or expired link")));
    }

    #[test]
    fn forged_and_foreign_links_are_refused() {
        let s = LinkSigner::new(&[7u8; 32]).unwrap();
        let link = s.sign(&scope(None), Duration::from_secs(60), 0).unwrap();
        let other = LinkSigner::new(&[8u8; 32]).unwrap();
        assert!(other.verify(&link.token, 1).is_err(), "another archive's secret");
        // Another study in the payload, the MAC kept.
        let (payload, mac) = link.token.strip_prefix(LINK_PREFIX).unwrap().split_once('_').unwrap();
        let text = String::from_utf8(hex::decode(payload).unwrap()).unwrap().replace("|1.2.3|", "|1.2.4|");
        assert!(s.verify(&format!("{LINK_PREFIX}{}_{mac}", hex::encode(text)), 1).is_err());
        for junk in ["vnal_", "vnal_zz_zz", "vnal_00_00", "vnak_00_00"] {
            assert!(s.verify(junk, 1).is_err(), "{junk}");
        }
        assert_eq!(LinkSigner::new(&[1u8; 31]).unwrap_err(), LinkError::ShortSecret);
        assert_eq!(s.sign(&scope(None), MAX_LINK_TTL + Duration::from_secs(1), 0).unwrap_err(), LinkError::TooLong);
    }
}
