//! The `[auth]` and `[tenancy]` sections: who may call the HTTP interface (anonymous access,
//! failure limits, the link secret, an OpenID provider) and which tenant a new object belongs
//! to; and their checks beyond the file format.

use crate::{Config, ConfigError};
use serde::Deserialize;

/// When a request without credentials is let in (`auth.anonymous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnonymousConfig {
    Off,
    Loopback,
}

/// `[auth]`: who may call the HTTP interface.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub anonymous: AnonymousConfig,
    /// Failed authentications from one address within `failure_window_seconds` before it is
    /// refused for `lockout_seconds` (0: no limit).
    pub max_failures: u32,
    pub failure_window_seconds: u64,
    pub lockout_seconds: u64,
    /// The secret that signs links (`POST /admin/links`), shared by every node: a file of at
    /// least 32 bytes. Empty: `<data_dir>/link-secret`, made with 256 random bits if missing.
    pub link_secret_file: String,
    /// Bearer access tokens from an OpenID Connect provider; absent: none accepted.
    pub oidc: Option<OidcConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous: AnonymousConfig::Loopback,
            max_failures: 20,
            failure_window_seconds: 60,
            lockout_seconds: 300,
            link_secret_file: String::new(),
            oidc: None,
        }
    }
}

/// `[audit]`: where the audit trail goes besides the catalog.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Every event also sent to a syslog collector over TLS; absent: the catalog only.
    pub syslog: Option<SyslogConfig>,
}

/// `[audit.syslog]`: RFC 5424 messages over TLS (RFC 5425), as IHE ATNA asks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the collector (6514 is the registered port).
    pub address: String,
    /// PEM CA certificates the collector's certificate chains to.
    pub ca_file: String,
    /// The name the collector's certificate must carry; empty: the host of `address`.
    #[serde(default)]
    pub server_name: String,
    /// Our client certificate and key (PEM), for collectors that ask; both or neither.
    #[serde(default)]
    pub cert_file: String,
    #[serde(default)]
    pub key_file: String,
    /// The HOSTNAME field of the messages; empty: this machine's host name.
    #[serde(default)]
    pub hostname: String,
}

/// `[auth.oidc]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    /// Empty: from the issuer's discovery document.
    #[serde(default)]
    pub jwks_uri: String,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u64,
    /// Empty: users see every tenant.
    #[serde(default)]
    pub tenant_claim: String,
    #[serde(default)]
    pub roles_claim: String,
    #[serde(default)]
    pub role_scopes: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub ca_file: String,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "PS256".into(), "ES256".into()]
}
fn default_leeway() -> u64 {
    30
}
fn default_refresh() -> u64 {
    3600
}

/// `[tenancy]`: which tenant a new object belongs to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancyConfig {
    /// When no rule matches and the sender is not bound to exactly one tenant.
    pub default_tenant: String,
    pub rules: Vec<TenantRuleConfig>,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        TenancyConfig { default_tenant: "default".into(), rules: Vec::new() }
    }
}

/// `[[tenancy.rules]]`: every condition given must hold; the first rule that matches decides.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRuleConfig {
    pub tenant: String,
    #[serde(default)]
    pub calling_ae: Option<String>,
    #[serde(default)]
    pub issuer_of_patient_id: Option<String>,
    #[serde(default)]
    pub institution: Option<String>,
    /// `{ tag = "00080060", value = "SM" }`: a top-level attribute's first value.
    #[serde(default)]
    pub attribute: Option<AttributeMatch>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeMatch {
    pub tag: String,
    pub value: String,
}

impl AttributeMatch {
    /// The tag as (group, element), from 8 hex digits.
    pub fn tag(&self) -> Option<(u16, u16)> {
        let t = self.tag.trim();
        if t.len() != 8 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some((u16::from_str_radix(&t[..4], 16).ok()?, u16::from_str_radix(&t[4..], 16).ok()?))
    }
}

/// A tenant name: `/`-separated segments of letters, digits, `-`, `_`, `.` (the archive's rule).
fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.split('/').all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
}

pub(crate) fn check_security(c: &Config) -> Result<(), ConfigError> {
    let bad = |what: String| Err(ConfigError::Inconsistent(what));
    if c.http.tls_cert_file.is_empty() != c.http.tls_key_file.is_empty() {
        return bad("http.tls_cert_file and http.tls_key_file go together: both or neither".into());
    }
    if !valid_tenant(&c.tenancy.default_tenant) {
        return bad("tenancy.default_tenant: segments of letters, digits, '-', '_', '.' separated by '/'".into());
    }
    for (n, r) in c.tenancy.rules.iter().enumerate() {
        if !valid_tenant(&r.tenant) {
            return bad(format!("tenancy.rules[{n}].tenant '{}' is not a valid tenant name", r.tenant));
        }
        if r.calling_ae.is_none() && r.issuer_of_patient_id.is_none() && r.institution.is_none() && r.attribute.is_none() {
            return bad(format!("tenancy.rules[{n}] has no condition (use tenancy.default_tenant instead)"));
        }
        if r.attribute.as_ref().is_some_and(|a| a.tag().is_none()) {
            return bad(format!("tenancy.rules[{n}].attribute.tag must be 8 hex digits (gggg eeee)"));
        }
    }
    let d = &c.dimse;
    if d.tls_cert_file.is_empty() != d.tls_key_file.is_empty() {
        return bad("dimse.tls_cert_file and dimse.tls_key_file go together: both or neither".into());
    }
    if d.tls_require_client_certificate && (d.tls_ca_file.is_empty() || d.tls_cert_file.is_empty()) {
        return bad("dimse.tls_require_client_certificate needs dimse.tls_cert_file, tls_key_file and tls_ca_file".into());
    }
    for a in &d.known_aes {
        if !a.tls_certificate_sha256.is_empty() && a.certificate_fingerprint().is_none() {
            return bad(format!("dimse.known_aes '{}': tls_certificate_sha256 must be 64 hex digits (colons allowed)", a.ae_title));
        }
        if !a.tls_certificate_sha256.is_empty() && (d.tls_cert_file.is_empty() || d.tls_ca_file.is_empty()) {
            return bad(format!("dimse.known_aes '{}': tls_certificate_sha256 needs DICOM TLS with client certificates (dimse.tls_cert_file, tls_key_file, tls_ca_file)", a.ae_title));
        }
        if a.tls && d.tls_ca_file.is_empty() {
            return bad(format!("dimse.known_aes '{}': tls needs dimse.tls_ca_file to verify its certificate", a.ae_title));
        }
        if let Some(t) = a.tenants.iter().find(|t| !valid_tenant(t) && t.as_str() != "*") {
            return bad(format!("dimse.known_aes '{}': tenant '{t}' is not a valid tenant name", a.ae_title));
        }
    }
    if let Some(s) = &c.audit.syslog {
        if s.address.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
            return bad("audit.syslog.address must be host:port".into());
        }
        if s.ca_file.is_empty() {
            return bad("audit.syslog.ca_file is required: the collector's certificate is always verified".into());
        }
        if s.cert_file.is_empty() != s.key_file.is_empty() {
            return bad("audit.syslog.cert_file and key_file go together: both or neither".into());
        }
    }
    if let Some(o) = &c.auth.oidc {
        if o.issuer.is_empty() || o.audience.is_empty() {
            return bad("auth.oidc: issuer and audience are required".into());
        }
    }
    Ok(())
}
