//! The configuration file format: strict (`deny_unknown_fields`), versioned, every setting
//! overridable by environment (`VNA__SECTION__KEY=value`), a `*_file` twin for every secret.
//! Each crate's section is handed to it explicitly by the composition root.
//!
//! # How it is built
//!
//! The file format: strict (`deny_unknown_fields`), versioned (`version = 1`), `VNA__SECTION__KEY`
//! environment overrides, `*_file` twins for secrets (`catalog.url_file`). A test keeps
//! `config/vna.toml` equal to the defaults. `dimse.rs` holds `[dimse]` (listener, DICOM TLS,
//! known AEs), `security.rs` `[auth]`, `[tenancy]` and `[audit]`, `lifecycle.rs` `[lifecycle]` and
//! `[jobs]`, `search.rs` `[search]`; the rest is here.

use serde::Deserialize;

mod dimse;
mod lifecycle;
mod search;
mod security;
use dimse::check_dimse;
pub use dimse::*;
pub use lifecycle::*;
pub use search::*;
use security::check_security;
pub use security::*;
use std::path::{Path, PathBuf};

pub const CURRENT_VERSION: u32 = 1;
const ENV_PREFIX: &str = "VNA__";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Format version of this file.
    pub version: u32,
    /// Where the embedded catalog and the default filesystem tier live.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub ingest: IngestConfig,
    pub catalog: CatalogConfig,
    pub storage: StorageConfig,
    pub query: QueryConfig,
    pub dimse: DimseConfig,
    pub auth: AuthConfig,
    pub tenancy: TenancyConfig,
    pub audit: AuditConfig,
    pub lifecycle: LifecycleConfig,
    pub jobs: JobsConfig,
    pub search: SearchConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CURRENT_VERSION,
            data_dir: PathBuf::from("./vna-data"),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            catalog: CatalogConfig::default(),
            storage: StorageConfig::default(),
            query: QueryConfig::default(),
            dimse: DimseConfig::default(),
            auth: AuthConfig::default(),
            tenancy: TenancyConfig::default(),
            audit: AuditConfig::default(),
            lifecycle: LifecycleConfig::default(),
            jobs: JobsConfig::default(),
            search: SearchConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// Path prefix of the DICOMweb services.
    pub dicomweb_root: String,
    /// Public base URL (scheme and authority) for RetrieveURL and BulkDataURI; when empty, taken
    /// from the request's Host header.
    pub public_url: String,
    /// Requests served at once; more wait in the accept queue.
    pub max_concurrent_requests: usize,
    /// Seconds an in-flight request may take to finish after shutdown begins.
    pub shutdown_grace_seconds: u64,
    /// TLS: the PEM certificate chain and private key (both or neither; reloaded when they
    /// change or on SIGHUP). Empty: plain HTTP.
    pub tls_cert_file: String,
    pub tls_key_file: String,
    /// Origins whose web pages may call the HTTP services (CORS, for a viewer or a patient
    /// record served from elsewhere): `scheme://host[:port]` each, or `"*"` for any. Empty:
    /// same origin only.
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            dicomweb_root: "/dicom-web".into(),
            public_url: String::new(),
            max_concurrent_requests: 512,
            shutdown_grace_seconds: 30,
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionPolicy {
    Reject,
    KeepBoth,
    Replace,
}

impl From<VersionPolicy> for vna_catalog::VersionPolicy {
    fn from(p: VersionPolicy) -> Self {
        match p {
            VersionPolicy::Reject => vna_catalog::VersionPolicy::Reject,
            VersionPolicy::KeepBoth => vna_catalog::VersionPolicy::KeepBoth,
            VersionPolicy::Replace => vna_catalog::VersionPolicy::Replace,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub max_object_bytes: u64,
    pub max_concurrent_stores: usize,
    pub version_policy: VersionPolicy,
    pub max_header_bytes: usize,
    pub bulk_threshold_bytes: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_object_bytes: 64 << 30,
            max_concurrent_stores: 64,
            version_policy: VersionPolicy::Replace,
            max_header_bytes: 64 << 20,
            bulk_threshold_bytes: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Empty: the embedded SQLite catalog at `{data_dir}/catalog.sqlite`. Otherwise a
    /// `postgres://` URL (it may hold a password: prefer `url_file`).
    pub url: String,
    /// A file whose content is the URL.
    pub url_file: String,
    pub max_connections: u32,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig { url: String::new(), url_file: String::new(), max_connections: 16 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Tier new objects go to.
    pub default_tier: String,
    /// Named storage locations.
    pub tiers: std::collections::BTreeMap<String, TierConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let mut tiers = std::collections::BTreeMap::new();
        tiers.insert("default".to_owned(), TierConfig::Filesystem { path: String::new(), retention: None });
        StorageConfig { default_tier: "default".into(), tiers }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum TierConfig {
    /// A directory; empty path: `{data_dir}/blobs`. Retention is emulated by the archive
    /// (weaker than S3 Object Lock: whoever can write the directory can delete).
    Filesystem {
        #[serde(default)]
        path: String,
        #[serde(default)]
        retention: Option<RetentionConfig>,
    },
    /// A bucket on an S3-compatible store.
    S3(Box<S3TierConfig>),
}

/// Object Lock retention given to every object written to a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub mode: LockModeConfig,
    /// Days from the write.
    pub days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LockModeConfig {
    /// Nobody can delete or shorten before the date, not even with the archive's credentials.
    Compliance,
    /// Users with the bypass permission can.
    Governance,
}

/// `kind = "s3"`: a bucket (with versioning, and Object Lock for retention) on an S3 endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3TierConfig {
    /// `http(s)://host:port`; empty: AWS's endpoint for the region.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Prepended to every (opaque) object key, e.g. `"vna/"`.
    pub prefix: String,
    /// Path-style URLs (`endpoint/bucket/key`), what most on-premises stores want.
    pub path_style: bool,
    /// Storage class of new objects; empty: the bucket's default.
    pub storage_class: String,
    /// Access key id; with `secret_access_key_file`. Both empty: the standard AWS credential
    /// chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile files, instance metadata).
    pub access_key_id: String,
    /// A file holding the access key id (instead of `access_key_id`).
    pub access_key_id_file: String,
    /// A file holding the secret access key. The secret itself never goes in this file.
    pub secret_access_key_file: String,
    /// Objects up to this size are one PUT; larger ones go up in parts of this size (at least 5).
    pub part_size_mib: u32,
    /// Parts of one object in flight at once.
    pub parts_in_flight: u32,
    /// Also send `x-amz-checksum-sha256` (only for stores that verify it; Ceph RGW 16 does not).
    pub checksum_sha256: bool,
    /// The bucket must have Object Lock enabled (checked by `vna storage check`).
    pub object_lock: bool,
    /// Retention set on every new object version (needs a bucket with Object Lock).
    pub retention: Option<RetentionConfig>,
    /// S3 requests in flight at once for this tier.
    pub max_in_flight: u32,
    /// Seconds a request waits for a free slot before the store counts as unavailable.
    pub queue_timeout_seconds: u64,
    pub connect_timeout_seconds: u64,
    /// Seconds per attempt of one request.
    pub request_timeout_seconds: u64,
    /// Attempts per request (exponential backoff between them).
    pub max_attempts: u32,
    /// Server-side encryption asked of the store for every new object: empty (the bucket's
    /// default), `"SSE-S3"` (keys managed by the store) or `"SSE-KMS"` (with `kms_key_id`).
    pub encryption: String,
    /// The KMS key of SSE-KMS; empty: the store's default key.
    pub kms_key_id: String,
}

impl Default for S3TierConfig {
    fn default() -> Self {
        S3TierConfig {
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: String::new(),
            prefix: String::new(),
            path_style: true,
            storage_class: String::new(),
            access_key_id: String::new(),
            access_key_id_file: String::new(),
            secret_access_key_file: String::new(),
            part_size_mib: 16,
            parts_in_flight: 2,
            checksum_sha256: false,
            object_lock: false,
            retention: None,
            max_in_flight: 64,
            queue_timeout_seconds: 30,
            connect_timeout_seconds: 5,
            request_timeout_seconds: 60,
            max_attempts: 3,
            encryption: String::new(),
            kms_key_id: String::new(),
        }
    }
}

impl S3TierConfig {
    /// The access key id and secret from the configuration and its files; `None`: use the
    /// standard AWS chain.
    pub fn credentials(&self) -> Result<Option<(String, String)>, ConfigError> {
        let read = |p: &str| {
            let path = PathBuf::from(p);
            std::fs::read_to_string(&path).map(|s| s.trim().to_owned()).map_err(|source| ConfigError::Secret { path, source })
        };
        let id = if self.access_key_id_file.is_empty() { self.access_key_id.clone() } else { read(&self.access_key_id_file)? };
        match (id.is_empty(), self.secret_access_key_file.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => Ok(Some((id, read(&self.secret_access_key_file)?))),
            _ => Err(ConfigError::Inconsistent(
                "an S3 tier needs both an access key id and secret_access_key_file, or neither (AWS credential chain)".into(),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// QIDO-RS results per page when the request gives no `limit`.
    pub default_limit: u32,
    /// Largest `limit` honoured; larger requests are capped (with a Warning header).
    pub max_limit: u32,
    /// Longest list a request may make, over DICOMweb and DIMSE: values of a UID or code
    /// list (QIDO-RS, C-FIND), `includefield` entries, frame numbers of `/frames/{list}`,
    /// parts of a response listing an instance's frames. Longer requests are refused (400,
    /// or C-FIND 0xA900): a short request must not cost thousands of reads.
    pub max_list_items: u32,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig { default_limit: 1000, max_limit: 10000, max_list_items: 1000 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration is invalid: {0}")]
    Invalid(#[source] toml::de::Error),
    #[error("environment variable {name} does not name a setting")]
    BadEnvName { name: String },
    #[error("configuration version {found} is not supported (this build reads version {CURRENT_VERSION})")]
    Version { found: u32 },
    #[error("{0}")]
    Inconsistent(String),
    #[error("cannot read secret file {path}")]
    Secret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Loads the configuration: defaults, then the file (if any), then `VNA__…` environment
/// variables, then `overrides` (`("http.listen", "127.0.0.1:0")`, from command-line flags).
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[(&str, String)],
) -> Result<Config, ConfigError> {
    let mut root = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
            toml::from_str::<toml::Table>(&text).map_err(ConfigError::Invalid)?
        }
        None => toml::Table::new(),
    };
    for (name, value) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else { continue };
        if path.is_empty() || path.split("__").any(str::is_empty) {
            return Err(ConfigError::BadEnvName { name });
        }
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        set(&mut root, &keys, &value);
    }
    for (path, value) in overrides {
        let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
        set(&mut root, &keys, value);
    }
    let config: Config = toml::Value::Table(root).try_into().map_err(ConfigError::Invalid)?;
    if config.version != CURRENT_VERSION {
        return Err(ConfigError::Version { found: config.version });
    }
    if !config.storage.tiers.contains_key(&config.storage.default_tier) {
        return Err(ConfigError::Inconsistent(format!(
            "storage.default_tier '{}' is not one of storage.tiers",
            config.storage.default_tier
        )));
    }
    if !config.http.dicomweb_root.starts_with('/') || config.http.dicomweb_root.ends_with('/') {
        return Err(ConfigError::Inconsistent("http.dicomweb_root must start with '/' and not end with one".into()));
    }
    check_cors_origins(&config.http.cors_origins)?;
    if config.search.poll_ms == 0 || config.search.poll_ms > 60_000 {
        return Err(ConfigError::Inconsistent("search.poll_ms must be 1 to 60000".into()));
    }
    if config.jobs.lease_seconds < 3 || config.jobs.poll_seconds == 0 || !(1..=64).contains(&config.jobs.runners) {
        return Err(ConfigError::Inconsistent(
            "jobs.lease_seconds must be at least 3, jobs.poll_seconds at least 1, jobs.runners 1 to 64".into(),
        ));
    }
    check_dimse(&config.dimse)?;
    check_storage(&config.storage)?;
    check_security(&config)?;
    Ok(config)
}

/// Each `http.cors_origins` entry is an origin as browsers send it (RFC 6454 §6.1: scheme,
/// host, port; no path, no trailing slash), or `*` alone.
fn check_cors_origins(origins: &[String]) -> Result<(), ConfigError> {
    let bad = |o: &str| {
        Err(ConfigError::Inconsistent(format!("http.cors_origins: '{o}' is not an origin (scheme://host[:port], no path), or \"*\" alone")))
    };
    if origins.iter().any(|o| o == "*") {
        return if origins.len() == 1 { Ok(()) } else { bad("*") };
    }
    for o in origins {
        let Some(rest) = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")) else { return bad(o) };
        let host_ok = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !host_ok {
            return bad(o);
        }
    }
    Ok(())
}

fn check_storage(s: &StorageConfig) -> Result<(), ConfigError> {
    for (name, tier) in &s.tiers {
        let TierConfig::S3(t) = tier else { continue };
        let bad = |what: &str| Err(ConfigError::Inconsistent(format!("storage.tiers.{name}: {what}")));
        if t.bucket.is_empty() {
            return bad("bucket is required");
        }
        if t.part_size_mib < 5 {
            return bad("part_size_mib must be at least 5 (S3's smallest part)");
        }
        if t.parts_in_flight == 0 || t.max_in_flight == 0 || t.max_attempts == 0 {
            return bad("parts_in_flight, max_in_flight and max_attempts must be at least 1");
        }
        if t.retention.is_some() && !t.object_lock {
            return bad("retention needs object_lock = true (a bucket created with Object Lock)");
        }
        if !(t.endpoint.is_empty() || t.endpoint.starts_with("http://") || t.endpoint.starts_with("https://")) {
            return bad("endpoint must be an http:// or https:// URL");
        }
        if !["", "SSE-S3", "SSE-KMS"].contains(&t.encryption.as_str()) {
            return bad("encryption must be \"\", \"SSE-S3\" or \"SSE-KMS\"");
        }
        if !t.kms_key_id.is_empty() && t.encryption != "SSE-KMS" {
            return bad("kms_key_id goes with encryption = \"SSE-KMS\"");
        }
    }
    Ok(())
}

/// Sets a dotted path in a TOML table; the value is read as TOML (numbers, booleans) when it
/// parses as such, else taken as a string.
fn set(table: &mut toml::Table, keys: &[String], raw: &str) {
    let Some((last, parents)) = keys.split_last() else { return };
    let mut t = table;
    for k in parents {
        let entry = t.entry(k.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else { return };
        t = inner;
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut v| v.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    t.insert(last.clone(), value);
}

impl Config {
    /// The catalog URL, from `catalog.url` or the file named by `catalog.url_file`.
    pub fn catalog_url(&self) -> Result<Option<String>, ConfigError> {
        if !self.catalog.url_file.is_empty() {
            let path = PathBuf::from(&self.catalog.url_file);
            let s = std::fs::read_to_string(&path).map_err(|source| ConfigError::Secret { path, source })?;
            return Ok(Some(s.trim().to_owned()));
        }
        Ok((!self.catalog.url.is_empty()).then(|| self.catalog.url.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/vna.toml");
        let cfg = load(Some(&path), Vec::new(), &[]).expect("config/vna.toml must load");
        assert_eq!(cfg, Config::default(), "config/vna.toml must show every setting at its default");
        // Every key of the example must be a real setting: deny_unknown_fields proves that.
    }

    #[test]
    fn env_and_overrides_win() {
        let env = vec![
            ("VNA__HTTP__LISTEN".to_owned(), "0.0.0.0:9999".to_owned()),
            ("VNA__INGEST__MAX_OBJECT_BYTES".to_owned(), "1048576".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let cfg = load(None, env, &[("data_dir", "/tmp/x".into())]).unwrap();
        assert_eq!(cfg.http.listen, "0.0.0.0:9999");
        assert_eq!(cfg.ingest.max_object_bytes, 1_048_576);
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn dimse_known_aes_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vna.toml");
        std::fs::write(
            &file,
            "[dimse]\nallow_any_calling_ae = false\n[[dimse.known_aes]]\nae_title = \"CT1\"\nhost = \"10.0.0.5\"\nport = 104\ncan_retrieve = false\n",
        )
        .unwrap();
        let cfg = load(Some(&file), Vec::new(), &[]).unwrap();
        assert!(!cfg.dimse.allow_any_calling_ae);
        assert_eq!(cfg.dimse.known_aes.len(), 1);
        assert!(cfg.dimse.known_aes[0].can_store && !cfg.dimse.known_aes[0].can_retrieve);
        let long = vec![("VNA__DIMSE__AE_TITLE".to_owned(), "MUCH-TOO-LONG-AE-TITLE".to_owned())];
        assert!(matches!(load(None, long, &[]), Err(ConfigError::Inconsistent(_))));
        let small = vec![("VNA__DIMSE__MAX_PDU_LENGTH".to_owned(), "100".to_owned())];
        assert!(matches!(load(None, small, &[]), Err(ConfigError::Inconsistent(_))));
    }

    #[test]
    fn cors_origins_are_origins_or_a_lone_star() {
        let with = |v: &str| load(None, vec![("VNA__HTTP__CORS_ORIGINS".to_owned(), v.to_owned())], &[]);
        let cfg = with(r#"["https://viewer.example.org", "http://127.0.0.1:3000"]"#).unwrap();
        assert_eq!(cfg.http.cors_origins, ["https://viewer.example.org", "http://127.0.0.1:3000"]);
        assert_eq!(with(r#"["*"]"#).unwrap().http.cors_origins, ["*"]);
        for bad in [
            r#"["*", "https://a.example"]"#,
            r#"["https://a.example/"]"#,
            r#"["a.example"]"#,
            r#"["https://a.example/ohif"]"#,
            r#"["https://"]"#,
        ] {
            assert!(matches!(with(bad), Err(ConfigError::Inconsistent(_))), "{bad}");
        }
        assert!(load(None, Vec::new(), &[]).unwrap().http.cors_origins.is_empty(), "none by default");
    }

    #[test]
    fn s3_tier() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t\n").unwrap();
        let file = dir.path().join("vna.toml");
        let text = format!(
            "[storage]\ndefault_tier = \"hot\"\n[storage.tiers.hot]\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:7480\"\nbucket = \"b\"\n\
             access_key_id = \"AK\"\nsecret_access_key_file = \"{}\"\nobject_lock = true\nretention = {{ mode = \"COMPLIANCE\", days = 3650 }}\n",
            secret.display()
        );
        std::fs::write(&file, &text).unwrap();
        let cfg = load(Some(&file), Vec::new(), &[]).unwrap();
        let TierConfig::S3(t) = &cfg.storage.tiers["hot"] else { panic!("not s3") };
        assert_eq!(t.part_size_mib, 16);
        assert_eq!(t.retention, Some(RetentionConfig { mode: LockModeConfig::Compliance, days: 3650 }));
        assert_eq!(t.credentials().unwrap(), Some(("AK".into(), "s3cr3t".into())));
        let env = vec![("VNA__STORAGE__TIERS__HOT__PART_SIZE_MIB".to_owned(), "4".to_owned())];
        assert!(matches!(load(Some(&file), env, &[]), Err(ConfigError::Inconsistent(_))));
        std::fs::write(&file, text.replace("object_lock = true\n", "")).unwrap();
        assert!(matches!(load(Some(&file), Vec::new(), &[]), Err(ConfigError::Inconsistent(_))), "retention without object lock");
        std::fs::write(&file, text.replace("bucket = \"b\"", "buckett = \"b\"")).unwrap();
        assert!(matches!(load(Some(&file), Vec::new(), &[]), Err(ConfigError::Invalid(_))), "unknown key in an s3 tier");
    }

    #[test]
    fn unknown_settings_are_errors() {
        let env = vec![("VNA__HTTP__LISTN".to_owned(), "x".to_owned())];
        assert!(matches!(load(None, env, &[]), Err(ConfigError::Invalid(_))));
        let env = vec![("VNA__INGEST__VERSION_POLICY".to_owned(), "sometimes".to_owned())];
        assert!(matches!(load(None, env, &[]), Err(ConfigError::Invalid(_))));
    }
}
