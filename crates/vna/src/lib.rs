//! The composition root: builds the catalog, blob stores and archive service from the
//! configuration, and runs the front ends. Tests start it in-process with [`run`] on a
//! listener bound to port 0.
//!
//! # How it is built
//!
//! The binary and composition root (above; `build_tiers` opens every tier, `s3_settings` reads an
//! S3 tier's secrets from their files), `import.rs` (`vna import`) and `verify.rs` (`vna verify`:
//! every current instance, or one study, re-read a few at a time; exit 1 on anything missing,
//! altered or unreadable; problems are named by tier, opaque key and version, SOP Instance UIDs
//! only with `--with-uids`).

pub mod apikey;
pub mod import;
pub mod lifecycle;
pub mod syslog;
pub mod tls;
pub mod verify;

use anyhow::Context;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use vna_archive::{Archive, ArchiveConfig};
use vna_blob::BlobStore;
use vna_catalog::Catalog;
use vna_config::{Config, TierConfig};

/// Opens the catalog and blob stores and builds the archive service.
pub async fn build_archive(config: &Config) -> anyhow::Result<Arc<Archive>> {
    build_archive_with(config, None).await
}

/// The node's search index (`[search]`), or `None` when it is off. Only `vna serve` opens it:
/// one process writes an index, and the other commands have no use for it.
pub fn open_search(config: &Config) -> anyhow::Result<Option<Arc<vna_archive::Search>>> {
    if !config.search.enabled {
        return Ok(None);
    }
    let dir = if config.search.dir.is_empty() { config.data_dir.join("search") } else { std::path::PathBuf::from(&config.search.dir) };
    let vocab = search_vocabulary(config)?;
    let index = vna_search::SearchIndex::open(&dir, Arc::new(vocab))
        .with_context(|| format!("opening the search index {} (is another vna serve using it?)", dir.display()))?;
    Ok(Some(Arc::new(vna_archive::Search::new(index))))
}

/// The concept table `search.concepts_file` names, or the one the archive ships; checked.
pub fn search_vocabulary(config: &Config) -> anyhow::Result<vna_search::Vocabulary> {
    if config.search.concepts_file.is_empty() {
        return Ok(vna_search::Vocabulary::builtin());
    }
    let path = &config.search.concepts_file;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading search.concepts_file {path}"))?;
    vna_search::Vocabulary::parse(&text).with_context(|| format!("search.concepts_file {path}"))
}

/// [`build_archive`] with the node's search index.
pub async fn build_archive_with(config: &Config, search: Option<Arc<vna_archive::Search>>) -> anyhow::Result<Arc<Archive>> {
    tokio::fs::create_dir_all(&config.data_dir).await.with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let catalog: Arc<dyn Catalog> = match config.catalog_url()? {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Arc::new(
            vna_catalog::postgres::PostgresCatalog::connect(&url, config.catalog.max_connections)
                .await
                .context("opening the PostgreSQL catalog")?,
        ),
        Some(_) => anyhow::bail!("catalog.url must be a postgres:// URL (leave it empty for the embedded SQLite catalog)"),
        None => {
            let path = config.data_dir.join("catalog.sqlite");
            Arc::new(
                vna_catalog::sqlite::SqliteCatalog::open(&path)
                    .await
                    .with_context(|| format!("opening the SQLite catalog {}", path.display()))?,
            )
        }
    };
    let tiers = build_tiers(config).await?;
    let archive_config = ArchiveConfig {
        max_object_bytes: config.ingest.max_object_bytes,
        max_concurrent_stores: config.ingest.max_concurrent_stores,
        version_policy: config.ingest.version_policy.into(),
        parse_limits: vna_dicom::parse::ParseLimits {
            max_header_bytes: config.ingest.max_header_bytes,
            bulk_threshold: config.ingest.bulk_threshold_bytes,
            ..Default::default()
        },
        default_tier: config.storage.default_tier.clone(),
        max_list_items: config.query.max_list_items,
        tenancy: Arc::new(tenancy(&config.tenancy)),
        policies: policies(config)?.map(Arc::new),
        lock_horizon: (config.lifecycle.lock_horizon_days > 0)
            .then(|| std::time::Duration::from_secs(u64::from(config.lifecycle.lock_horizon_days) * 86_400)),
        hot_margin: std::time::Duration::from_secs(u64::from(config.lifecycle.hot_margin_days) * 86_400),
        search,
    };
    Ok(Archive::new(catalog, tiers, archive_config)?)
}

/// `[tenancy]` as the archive takes it (checked by `vna_config::load`).
pub fn tenancy(t: &vna_config::TenancyConfig) -> vna_archive::Tenancy {
    use vna_archive::TenantMatch;
    let rules = t
        .rules
        .iter()
        .map(|r| {
            let mut when = Vec::new();
            when.extend(r.calling_ae.clone().map(TenantMatch::CallingAe));
            when.extend(r.issuer_of_patient_id.clone().map(TenantMatch::IssuerOfPatientId));
            when.extend(r.institution.clone().map(TenantMatch::Institution));
            if let Some(a) = &r.attribute {
                if let Some((group, element)) = a.tag() {
                    when.push(TenantMatch::Attribute(vna_dicom::Tag(group, element), a.value.clone()));
                }
            }
            vna_archive::TenantRule { when, tenant: r.tenant.clone() }
        })
        .collect();
    vna_archive::Tenancy { rules, default_tenant: t.default_tenant.clone() }
}

/// `[auth]` as the identity layer takes it.
pub fn auth_settings(a: &vna_config::AuthConfig) -> vna_auth::AuthConfig {
    use std::time::Duration;
    let oidc = a.oidc.as_ref().map(|o| vna_auth::OidcConfig {
        issuer: o.issuer.clone(),
        audience: o.audience.clone(),
        jwks_uri: (!o.jwks_uri.is_empty()).then(|| o.jwks_uri.clone()),
        algorithms: o.algorithms.clone(),
        leeway: Duration::from_secs(o.leeway_seconds),
        refresh: Duration::from_secs(o.refresh_seconds.max(60)),
        tenant_claim: (!o.tenant_claim.is_empty()).then(|| o.tenant_claim.clone()),
        roles_claim: (!o.roles_claim.is_empty()).then(|| o.roles_claim.clone()),
        role_scopes: o.role_scopes.clone(),
        ca_file: (!o.ca_file.is_empty()).then(|| o.ca_file.clone().into()),
        fetch_timeout: Duration::from_secs(10),
    });
    vna_auth::AuthConfig {
        oidc,
        anonymous: match a.anonymous {
            vna_config::AnonymousConfig::Off => vna_auth::Anonymous::Off,
            vna_config::AnonymousConfig::Loopback => vna_auth::Anonymous::Loopback,
        },
        failures: vna_auth::FailureLimit {
            max_failures: a.max_failures,
            window: Duration::from_secs(a.failure_window_seconds),
            lockout: Duration::from_secs(a.lockout_seconds),
        },
        // Made by `run` from the link secret: it needs the data directory.
        links: None,
    }
}

/// Opens every configured storage tier. Nothing is sent to an S3 store yet.
pub async fn build_tiers(config: &Config) -> anyhow::Result<HashMap<String, Arc<dyn BlobStore>>> {
    let mut tiers: HashMap<String, Arc<dyn BlobStore>> = HashMap::new();
    for (name, tier) in &config.storage.tiers {
        let store: Arc<dyn BlobStore> = match tier {
            TierConfig::Filesystem { path, retention } => {
                let dir = if path.is_empty() { config.data_dir.join("blobs") } else { path.into() };
                let store = vna_blob::fs::FsBlobStore::open(&dir)
                    .await
                    .with_context(|| format!("opening storage tier '{name}' at {}", dir.display()))?;
                Arc::new(store.with_default_retention(retention.map(default_retention)))
            }
            TierConfig::S3(t) => {
                let settings = s3_settings(t).with_context(|| format!("storage tier '{name}'"))?;
                Arc::new(vna_blob_s3::S3BlobStore::new(settings).await.with_context(|| format!("opening storage tier '{name}'"))?)
            }
        };
        tiers.insert(name.clone(), store);
    }
    Ok(tiers)
}

fn default_retention(r: vna_config::RetentionConfig) -> vna_blob::DefaultRetention {
    let mode = match r.mode {
        vna_config::LockModeConfig::Compliance => vna_blob::LockMode::Compliance,
        vna_config::LockModeConfig::Governance => vna_blob::LockMode::Governance,
    };
    vna_blob::DefaultRetention { mode, days: r.days }
}

/// `[storage.tiers.X]` of kind `s3` as the backend takes it, secrets read from their files.
pub fn s3_settings(t: &vna_config::S3TierConfig) -> anyhow::Result<vna_blob_s3::S3Settings> {
    use std::time::Duration;
    let mut s = vna_blob_s3::S3Settings::new(&t.bucket);
    s.endpoint = (!t.endpoint.is_empty()).then(|| t.endpoint.clone());
    s.region = t.region.clone();
    s.prefix = t.prefix.clone();
    s.path_style = t.path_style;
    s.storage_class = (!t.storage_class.is_empty()).then(|| t.storage_class.clone());
    s.credentials = t.credentials()?;
    s.part_size = (t.part_size_mib as usize) << 20;
    s.parts_in_flight = t.parts_in_flight as usize;
    s.checksum_sha256 = t.checksum_sha256;
    s.default_retention = t.retention.map(default_retention);
    s.require_object_lock = t.object_lock;
    s.max_in_flight = t.max_in_flight as usize;
    s.queue_timeout = Duration::from_secs(t.queue_timeout_seconds);
    s.connect_timeout = Duration::from_secs(t.connect_timeout_seconds);
    s.request_timeout = Duration::from_secs(t.request_timeout_seconds);
    s.max_attempts = t.max_attempts;
    s.encryption = match t.encryption.as_str() {
        "SSE-S3" => Some(vna_blob_s3::Encryption::S3),
        "SSE-KMS" => Some(vna_blob_s3::Encryption::Kms { key_id: (!t.kms_key_id.is_empty()).then(|| t.kms_key_id.clone()) }),
        _ => None,
    };
    Ok(s)
}

/// The lifecycle policies of `lifecycle.policies_dir`, loaded and checked: any error, conflict
/// or failing test case is refused, with what it is.
pub fn policies(config: &Config) -> anyhow::Result<Option<vna_lifecycle::PolicySet>> {
    if config.lifecycle.policies_dir.is_empty() {
        return Ok(None);
    }
    let dir = std::path::Path::new(&config.lifecycle.policies_dir);
    let set = vna_lifecycle::load_dir(dir).map_err(|e| anyhow::anyhow!("lifecycle.policies_dir: {e}"))?;
    let report = set.check();
    if !report.passed() {
        let failures = report
            .tests
            .iter()
            .filter(|t| !t.failures.is_empty())
            .map(|t| format!("test '{}' of {}: {}", t.test, t.file, t.failures.join("; ")));
        let all: Vec<String> = report.conflicts.iter().cloned().chain(failures).collect();
        anyhow::bail!("lifecycle policies in {} do not pass their checks (vna lifecycle check): {}", dir.display(), all.join(" | "));
    }
    tracing::info!(dir = %dir.display(), rules = set.rules().count(), hash = %set.hash, "lifecycle policies loaded");
    Ok(Some(set))
}

/// The HTTP application: DICOMweb under its root, the admin API under `/admin`, every request
/// authenticated by `auth`; `/healthz` outside, for load balancers. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` (the peer address decides anonymous
/// access and failure limits).
pub fn app(archive: Arc<Archive>, auth: Arc<vna_auth::Authenticator>, config: &Config, listen_port: Option<u16>) -> axum::Router {
    let admin = vna_dicomweb::admin_router(archive.clone(), auth.links().cloned());
    let web = vna_dicomweb::DicomWebConfig {
        root: config.http.dicomweb_root.clone(),
        public_url: config.http.public_url.clone(),
        default_limit: config.query.default_limit,
        max_limit: config.query.max_limit,
        listen_port,
        spool_dir: config.data_dir.join("spool"),
        tls: !config.http.tls_cert_file.is_empty(),
    };
    let dicomweb = vna_dicomweb::router(archive.clone(), web.clone());
    vna_dicomweb::authenticate(dicomweb.nest("/admin", admin), auth)
        .merge(vna_dicomweb::public_router(archive, web))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .layer(tower::limit::ConcurrencyLimitLayer::new(config.http.max_concurrent_requests.max(1)))
        // Outside authentication: a browser's preflight carries no credentials.
        .layer(tower::util::option_layer(cors(&config.http.cors_origins)))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
}

/// CORS (the Fetch standard's CORS protocol) for the configured origins, `None` when there are
/// none. `Authorization` is named in the allowed headers (a `*` there would not cover it), so a
/// viewer on another origin can send its bearer token; no cookies are used, so no credentials
/// mode. The headers a viewer reads are exposed (ranges, ETag, DICOMweb's Warning, Location).
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Checked by the configuration's loader: each is a valid header value.
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::ACCEPT,
                header::CONTENT_TYPE,
                header::RANGE,
                header::IF_NONE_MATCH,
                header::IF_RANGE,
                HeaderName::from_static("prefer"),
            ])
            .expose_headers([
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::CONTENT_RANGE,
                header::ACCEPT_RANGES,
                header::ETAG,
                header::WARNING,
                header::LOCATION,
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The span of a request in the logs: its method and path, never its query string, which can
/// hold a signed link (`?link=`) or patient data (QIDO-RS `PatientName=`).
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
}

/// The DIMSE settings of the configuration as the toolkit and the SCP take them; with DICOM
/// TLS, its certificates are loaded now (a bad file fails here) and watched from then on.
pub fn dimse_settings(config: &Config) -> anyhow::Result<(vna_dimse::ScpConfig, vna_dimse_scp::Peers)> {
    let d = &config.dimse;
    let files = dimse_tls_files(config);
    let tls = match &files {
        Some(f) => Some(tls::Reloading::start(f.clone(), &[])? as Arc<dyn vna_dimse::ServerTls>),
        None => None,
    };
    let client_tls = match d.known_aes.iter().any(|a| a.tls) {
        true => Some(tls::client_config(files.as_ref(), std::path::Path::new(&d.tls_ca_file))?),
        false => None,
    };
    let secs = |s: u64| (s > 0).then(|| std::time::Duration::from_secs(s));
    let scp = vna_dimse::ScpConfig {
        policy: vna_dimse::AcceptorPolicy {
            ae_title: d.ae_title.trim().to_owned(),
            allow_any_calling_ae: d.allow_any_calling_ae,
            known_calling_aes: d.known_aes.iter().map(|a| a.ae_title.trim().to_owned()).collect(),
            max_pdu_length: d.max_pdu_length,
        },
        max_associations: d.max_associations,
        timeouts: vna_dimse::Timeouts {
            read: secs(d.read_timeout_seconds),
            idle: secs(d.idle_timeout_seconds),
            write: secs(d.write_timeout_seconds),
        },
        shutdown_grace: std::time::Duration::from_secs(d.shutdown_grace_seconds),
        tls,
    };
    let known = d
        .known_aes
        .iter()
        .map(|a| {
            let rights = vna_dimse_scp::PeerRights { can_store: a.can_store, can_query: a.can_query, can_retrieve: a.can_retrieve };
            let tenants = (!a.tenants.is_empty() && !a.tenants.iter().any(|t| t == "*")).then(|| a.tenants.clone());
            let addresses = if a.check_host { resolve_host(&a.ae_title, &a.host) } else { Vec::new() };
            let certificate_sha256 = a.certificate_fingerprint();
            (
                a.ae_title.trim().to_owned(),
                vna_dimse_scp::KnownAe { rights, tenants, addresses, certificate_sha256, require_user_identity: a.require_user_identity },
            )
        })
        .collect();
    let destinations = d
        .known_aes
        .iter()
        .map(|a| {
            let tls = client_tls.clone().filter(|_| a.tls).map(|config| vna_dimse::ClientTls { config, server_name: None });
            (a.ae_title.trim().to_owned(), vna_dimse_scp::Destination { host: a.host.clone(), port: a.port, tls })
        })
        .collect();
    Ok((scp, vna_dimse_scp::Peers { known, allow_unknown: d.allow_any_calling_ae, destinations }))
}

/// The files of DICOM TLS (`dimse.tls_*`), when it is on.
pub fn dimse_tls_files(config: &Config) -> Option<tls::TlsFiles> {
    let d = &config.dimse;
    (!d.tls_cert_file.is_empty()).then(|| tls::TlsFiles {
        client_ca: (!d.tls_ca_file.is_empty()).then(|| d.tls_ca_file.clone().into()),
        require_client_certificate: d.tls_require_client_certificate,
        ..tls::TlsFiles::server(&d.tls_cert_file, &d.tls_key_file)
    })
}

/// The certificate and key of `http.tls_cert_file` / `http.tls_key_file`, when TLS is on.
pub fn tls_files(config: &Config) -> Option<tls::TlsFiles> {
    (!config.http.tls_cert_file.is_empty()).then(|| tls::TlsFiles::server(&config.http.tls_cert_file, &config.http.tls_key_file))
}

/// The signer of links, from `auth.link_secret_file`, or `<data_dir>/link-secret` made with 256
/// random bits (readable by its owner only) the first time.
pub fn link_signer(config: &Config) -> anyhow::Result<vna_auth::LinkSigner> {
    let path = if config.auth.link_secret_file.is_empty() {
        let path = config.data_dir.join("link-secret");
        if !path.exists() {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the operating system's random generator failed: {e}"))?;
            std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(hex::encode(bytes).as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        path
    } else {
        std::path::PathBuf::from(&config.auth.link_secret_file)
    };
    let secret = std::fs::read(&path).with_context(|| format!("reading the link secret {}", path.display()))?;
    vna_auth::LinkSigner::new(secret.trim_ascii()).with_context(|| format!("the link secret {}", path.display()))
}

/// The addresses a known AE's `host` stands for, resolved once at start. A host that does not
/// resolve gets an address nobody calls from: that AE title is refused until it does (restart).
fn resolve_host(ae: &str, host: &str) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    match (host, 0).to_socket_addrs() {
        Ok(addrs) => {
            let mut ips: Vec<_> = addrs.map(|a| a.ip().to_canonical()).collect();
            ips.dedup();
            ips
        }
        Err(e) => {
            tracing::warn!(ae_title = %ae, host, error = %e, "a known AE's host does not resolve: its calls are refused");
            vec![std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)]
        }
    }
}

/// The bound listeners `run` serves on.
pub struct Listeners {
    pub http: tokio::net::TcpListener,
    pub dimse: tokio::net::TcpListener,
}

/// The addresses `run` is serving on, given to `on_ready`.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub http: std::net::SocketAddr,
    pub dimse: std::net::SocketAddr,
    /// HTTP speaks TLS.
    pub tls: bool,
}

/// Takes the spool directory of non-DICOM uploads for this server (`spool.lock`, held until the
/// returned lock drops) and, when no other server has it, empties it: uploads a previous run
/// left there mid-request were never acknowledged. `vna import` and `vna verify` never spool,
/// so they never touch it.
async fn own_spool(config: &Config) -> anyhow::Result<vna_blob::fs::StoreLock> {
    let lock_path = config.data_dir.join("spool.lock");
    let (lock, alone) = tokio::task::spawn_blocking(move || vna_blob::fs::StoreLock::take(&lock_path))
        .await
        .context("locking the spool directory")?
        .context("locking the spool directory")?;
    if alone {
        if let Ok(mut dir) = tokio::fs::read_dir(config.data_dir.join("spool")).await {
            while let Ok(Some(entry)) = dir.next_entry().await {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        lock.share().context("sharing the spool lock")?;
    } else {
        tracing::warn!("another server uses this data directory's spool; its uploads in progress are left alone");
    }
    Ok(lock)
}

/// Serves HTTP and DIMSE until `shutdown` resolves, then stops accepting on both and lets
/// in-flight requests and associations finish (each up to its grace period). `on_ready` is
/// called with the bound addresses once both listeners accept.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(Ready),
) -> anyhow::Result<()> {
    let archive = build_archive_with(&config, open_search(&config)?).await?;
    let _spool = own_spool(&config).await?;
    let addr = listeners.http.local_addr().context("reading the bound HTTP address")?;
    let dimse_addr = listeners.dimse.local_addr().context("reading the bound DIMSE address")?;
    // Safe defaults: a DIMSE listener reachable from the network with no AE table would let
    // anyone store, query and retrieve everything.
    if config.dimse.allow_any_calling_ae && !dimse_addr.ip().is_loopback() && !config.dimse.allow_any_calling_ae_beyond_loopback {
        anyhow::bail!(
            "dimse listens on {dimse_addr}, beyond loopback, and accepts any calling AE title: anyone on the network could \
             store, query and retrieve everything. List the peers in [[dimse.known_aes]] and set dimse.allow_any_calling_ae \
             = false, or set dimse.allow_any_calling_ae_beyond_loopback = true if that is meant"
        );
    }
    if config.auth.oidc.is_none() {
        tracing::info!(
            anonymous = ?config.auth.anonymous,
            "no identity provider configured: HTTP callers need an API key (vna apikey), except anonymous ones on loopback when auth.anonymous = \"loopback\""
        );
    }
    let settings = vna_auth::AuthConfig { links: Some(Arc::new(link_signer(&config)?)), ..auth_settings(&config.auth) };
    let auth = vna_auth::Authenticator::new(archive.clone(), settings).context("setting up authentication")?;
    if config.auth.anonymous == vna_config::AnonymousConfig::Loopback && !addr.ip().is_loopback() {
        tracing::warn!(
            listen = %addr,
            "http listens beyond loopback with auth.anonymous = \"loopback\": behind a reverse proxy on this host every client is anonymous; set auth.anonymous = \"off\" there"
        );
    }
    let app = app(archive.clone(), auth.clone(), &config, Some(addr.port()));
    let grace = std::time::Duration::from_secs(config.http.shutdown_grace_seconds);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // One shutdown signal, fanned out to both front ends.
    let (fan_tx, fan_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = fan_tx.send(true);
    });
    let signalled = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await.map(|_| ());
    };
    // Responses go out in several writes (multipart headers, then ranged reads): without
    // TCP_NODELAY, Nagle's algorithm holds the last one until the client's delayed ACK, about
    // 40 ms per frame on a reused connection (measured: 148 → 5600 frames/s with it).
    let http_stop = signalled(fan_rx.clone());
    let draining = async move {
        http_stop.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        let _ = stop_tx.send(());
    };
    use std::future::IntoFuture;
    let make_service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match tls_files(&config) {
        None => {
            let listener = axum::serve::ListenerExt::tap_io(listeners.http, |stream: &mut tokio::net::TcpStream| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            Box::pin(axum::serve(listener, make_service).with_graceful_shutdown(draining).into_future())
        }
        Some(files) => {
            // TCP_NODELAY is set before the handshake; the tap only gives the peer address.
            let listener = axum::serve::ListenerExt::tap_io(tls::listen(listeners.http, files)?, |_: &mut _| {});
            Box::pin(axum::serve(listener, make_service).with_graceful_shutdown(draining).into_future())
        }
    };
    let (scp_config, peers) = dimse_settings(&config)?;
    if config.dimse.allow_any_calling_ae {
        tracing::warn!(
            listen = %dimse_addr,
            "dimse accepts any calling AE title (dimse.allow_any_calling_ae = true): list the peers in [[dimse.known_aes]] and set it to false in production"
        );
    }
    let dimse_stop = signalled(fan_rx.clone());
    let fan_stop = fan_rx.clone();
    // The audit trail's Application Activity (PS3.15 A.5.3.1): recorded before serving.
    let me = vna_archive::Principal::system();
    archive.audit_security(&me, vna_archive::APPLICATION_START, 0, "vna serve started").await;
    if let Some(c) = &config.audit.syslog {
        let target = syslog::SyslogTarget::from_config(c, &config.data_dir)?;
        tracing::info!(collector = %target.address, "audit trail also sent to syslog over TLS");
        tokio::spawn(syslog::run(archive.clone(), target));
    }
    let dimse = tokio::spawn(vna_dimse_scp::serve(archive.clone(), peers, auth, listeners.dimse, scp_config, dimse_stop));
    // The background job runner: claims work through the catalog, gives it back on shutdown.
    let jobs = config.jobs.run.then(|| {
        let secs = std::time::Duration::from_secs;
        let worker = vna_archive::jobs::Worker::for_this_process(secs(config.jobs.lease_seconds), secs(config.jobs.poll_seconds));
        let runners: Vec<_> = (0..config.jobs.runners)
            .map(|n| {
                let worker = vna_archive::jobs::Worker { owner: format!("{}#{n}", worker.owner), ..worker.clone() };
                tokio::spawn(archive.clone().run_jobs(worker, fan_rx.clone()))
            })
            .collect();
        futures::future::join_all(runners)
    });
    // The periodic apply run: each node offers it, one queues it per period.
    let schedule = (config.jobs.run && config.lifecycle.apply_every_hours > 0 && archive.policies().is_some()).then(|| {
        let every = std::time::Duration::from_secs(u64::from(config.lifecycle.apply_every_hours) * 3600);
        let poll = std::time::Duration::from_secs(config.jobs.poll_seconds.max(1));
        let l = &config.lifecycle;
        let pace = vna_archive::Pace {
            objects_per_second: (l.apply_max_per_second > 0).then_some(l.apply_max_per_second),
            megabytes_per_second: (l.apply_max_mb_per_second > 0).then_some(l.apply_max_mb_per_second),
        };
        tokio::spawn(archive.clone().run_schedule(every, poll, pace, fan_stop.clone()))
    });
    // Reads noted in memory, written to the catalog in batches (lifecycle `unused_for`).
    let accesses = (config.lifecycle.access_flush_seconds > 0).then(|| {
        let every = std::time::Duration::from_secs(config.lifecycle.access_flush_seconds);
        tokio::spawn(archive.clone().track_accesses(every, fan_stop.clone()))
    });
    // The search index follows the catalog's change feed: every node's ingest.
    let indexer = archive.config().search.is_some().then(|| {
        let poll = std::time::Duration::from_millis(config.search.poll_ms);
        tokio::spawn(archive.clone().run_search_indexer(poll, fan_stop.clone()))
    });
    on_ready(Ready { http: addr, dimse: dimse_addr, tls: tls_files(&config).is_some() });
    let mut server = tokio::spawn(server);
    let http_result = tokio::select! {
        r = &mut server => Some(r.context("server task")?.context("serving HTTP")),
        _ = stop_rx => None,
    };
    let http_result = match http_result {
        Some(r) => r,
        None => match tokio::time::timeout(grace, &mut server).await {
            Ok(r) => r.context("server task")?.context("serving HTTP"),
            Err(_) => {
                tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests did not finish within the grace period");
                server.abort();
                Ok(())
            }
        },
    };
    // The DIMSE side drains within its own grace period.
    dimse.await.context("DIMSE server task")?;
    if let Some(accesses) = accesses {
        let _ = tokio::time::timeout(grace, accesses).await;
    }
    if let Some(indexer) = indexer {
        let _ = tokio::time::timeout(grace, indexer).await;
    }
    if let Some(schedule) = schedule {
        let _ = tokio::time::timeout(grace, schedule).await;
    }
    // A running job stops at its next step and goes back to the queue with its progress.
    if let Some(jobs) = jobs {
        if tokio::time::timeout(grace, jobs).await.is_err() {
            tracing::warn!(grace_seconds = grace.as_secs(), "a job did not stop within the grace period; its lease will lapse");
        }
    }
    archive.audit_security(&me, vna_archive::APPLICATION_STOP, 0, "vna serve stopped").await;
    http_result
}
