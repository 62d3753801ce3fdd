//! The `[dimse]` section: the DIMSE listener, DICOM TLS, and the known AEs (rights, tenants,
//! host, client certificate, user identity), with their checks beyond the file format.

use crate::ConfigError;
use serde::Deserialize;

/// The DIMSE listener (`[dimse]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DimseConfig {
    /// Address of the DIMSE listener; port 0 picks a free port.
    pub listen: String,
    /// Our AE title: associations calling another title are rejected.
    pub ae_title: String,
    /// Associations served at once; more are rejected (transient, local limit exceeded).
    pub max_associations: usize,
    /// Largest PDU we receive (our Maximum Length, PS3.8 §D.1).
    pub max_pdu_length: u32,
    /// Seconds to wait for the next PDU inside a message (and for A-ASSOCIATE-RQ).
    pub read_timeout_seconds: u64,
    /// Seconds to wait for one PDU to be written.
    pub write_timeout_seconds: u64,
    /// Seconds an association may sit idle between messages before it is aborted.
    pub idle_timeout_seconds: u64,
    /// On shutdown, seconds in-flight associations get to finish.
    pub shutdown_grace_seconds: u64,
    /// Accept any calling AE title. When false, only `known_aes` may associate.
    pub allow_any_calling_ae: bool,
    /// `allow_any_calling_ae` on a listener beyond loopback: anyone on the network may store,
    /// query and retrieve. Refused at start unless this says it is meant.
    pub allow_any_calling_ae_beyond_loopback: bool,
    /// Peers: who may associate (when `allow_any_calling_ae` is false), what each may do,
    /// and where C-MOVE destinations are.
    pub known_aes: Vec<KnownAe>,
    /// DICOM TLS on the listener (PS3.15 Annex B): the PEM certificate chain and private key,
    /// both or neither (reloaded when they change or on SIGHUP). Empty: plain TCP.
    pub tls_cert_file: String,
    pub tls_key_file: String,
    /// PEM CA certificates peers' certificates chain to: client certificates on the listener
    /// are verified against them, and so are the servers of C-MOVE destinations marked `tls`.
    pub tls_ca_file: String,
    /// Refuse a TLS peer that presents no client certificate (needs `tls_ca_file`).
    pub tls_require_client_certificate: bool,
}

impl Default for DimseConfig {
    fn default() -> Self {
        DimseConfig {
            listen: "127.0.0.1:11112".into(),
            ae_title: "VNA".into(),
            max_associations: 64,
            max_pdu_length: 262_144,
            read_timeout_seconds: 60,
            write_timeout_seconds: 60,
            idle_timeout_seconds: 300,
            shutdown_grace_seconds: 30,
            allow_any_calling_ae: true,
            allow_any_calling_ae_beyond_loopback: false,
            known_aes: Vec::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_ca_file: String::new(),
            tls_require_client_certificate: false,
        }
    }
}

/// A known DIMSE peer (`[[dimse.known_aes]]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownAe {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    /// May send C-STORE.
    #[serde(default = "yes")]
    pub can_store: bool,
    /// May send C-FIND.
    #[serde(default = "yes")]
    pub can_query: bool,
    /// May send C-MOVE/C-GET (and is a C-MOVE destination).
    #[serde(default = "yes")]
    pub can_retrieve: bool,
    /// Tenants it sees and stores into; empty: every tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Refuse this AE title from any address but `host`'s.
    #[serde(default = "yes")]
    pub check_host: bool,
    /// C-MOVE sub-associations to this AE speak TLS (its certificate verified against
    /// `dimse.tls_ca_file`, ours presented as the client certificate).
    #[serde(default)]
    pub tls: bool,
    /// The SHA-256 fingerprint (hex, colons allowed) of the TLS client certificate this AE
    /// title must present; empty: none required.
    #[serde(default)]
    pub tls_certificate_sha256: String,
    /// Associations from this AE must authenticate a user (PS3.7 §D.3.3.7 User Identity
    /// Negotiation: an access token, or a username with an API key as passcode); the user acts
    /// through the AE, with what both may do and see.
    #[serde(default)]
    pub require_user_identity: bool,
}

impl KnownAe {
    /// The fingerprint of `tls_certificate_sha256` as bytes, when it is set and well formed.
    pub fn certificate_fingerprint(&self) -> Option<[u8; 32]> {
        let hex: String = self.tls_certificate_sha256.chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        if hex.len() != 64 {
            return None;
        }
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(out)
    }
}

fn yes() -> bool {
    true
}

/// PS3.5 Table 6.2-1 (AE): 1 to 16 characters, no backslash or control characters, not only
/// spaces.
pub fn valid_ae_title(ae: &str) -> bool {
    let t = ae.trim();
    !t.is_empty() && ae.len() <= 16 && !ae.chars().any(|c| c == '\\' || c.is_control() || !c.is_ascii())
}

pub(crate) fn check_dimse(d: &DimseConfig) -> Result<(), ConfigError> {
    if !valid_ae_title(&d.ae_title) {
        return Err(ConfigError::Inconsistent("dimse.ae_title must be 1 to 16 ASCII characters without backslash".into()));
    }
    if let Some(bad) = d.known_aes.iter().find(|a| !valid_ae_title(&a.ae_title)) {
        return Err(ConfigError::Inconsistent(format!(
            "dimse.known_aes: '{}' is not a valid AE title (1 to 16 ASCII characters without backslash)",
            bad.ae_title
        )));
    }
    if !(4096..=16 << 20).contains(&d.max_pdu_length) {
        return Err(ConfigError::Inconsistent("dimse.max_pdu_length must be between 4096 and 16777216".into()));
    }
    if d.max_associations == 0 {
        return Err(ConfigError::Inconsistent("dimse.max_associations must be at least 1".into()));
    }
    Ok(())
}
