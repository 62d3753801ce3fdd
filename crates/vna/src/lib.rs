//! The composition root: builds the catalog, blob stores and archive service from the
//! configuration, and runs the front ends. Tests start it in-process with [`run`] on a
//! listener bound to port 0.

pub mod import;

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
    tokio::fs::create_dir_all(&config.data_dir).await.with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let catalog: Arc<dyn Catalog> = match config.catalog_url()? {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Arc::new(
            vna_catalog::postgres::PostgresCatalog::connect(&url, config.catalog.max_connections).await.context("opening the PostgreSQL catalog")?,
        ),
        Some(_) => anyhow::bail!("catalog.url must be a postgres:// URL (leave it empty for the embedded SQLite catalog)"),
        None => {
            let path = config.data_dir.join("catalog.sqlite");
            Arc::new(vna_catalog::sqlite::SqliteCatalog::open(&path).await.with_context(|| format!("opening the SQLite catalog {}", path.display()))?)
        }
    };
    let mut tiers: HashMap<String, Arc<dyn BlobStore>> = HashMap::new();
    for (name, tier) in &config.storage.tiers {
        let store: Arc<dyn BlobStore> = match tier {
            TierConfig::Filesystem { path } => {
                let dir = if path.is_empty() { config.data_dir.join("blobs") } else { path.into() };
                Arc::new(vna_blob::fs::FsBlobStore::open(&dir).await.with_context(|| format!("opening storage tier '{name}' at {}", dir.display()))?)
            }
        };
        tiers.insert(name.clone(), store);
    }
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
    };
    Ok(Archive::new(catalog, tiers, archive_config)?)
}

/// The HTTP application: DICOMweb under its root, the admin API under `/admin`, `/healthz`.
pub fn app(archive: Arc<Archive>, config: &Config, listen_port: Option<u16>) -> axum::Router {
    let admin = vna_dicomweb::admin_router(archive.clone());
    let dicomweb = vna_dicomweb::router(
        archive,
        vna_dicomweb::DicomWebConfig {
            root: config.http.dicomweb_root.clone(),
            public_url: config.http.public_url.clone(),
            default_limit: config.query.default_limit,
            max_limit: config.query.max_limit,
            listen_port,
        },
    );
    dicomweb
        .nest("/admin", admin)
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .layer(tower::limit::ConcurrencyLimitLayer::new(config.http.max_concurrent_requests.max(1)))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish (up to the grace
/// period). `on_ready` is called with the bound address once the listener accepts.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let archive = build_archive(&config).await?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let app = app(archive, &config, Some(addr.port()));
    let grace = std::time::Duration::from_secs(config.http.shutdown_grace_seconds);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Responses go out in several writes (multipart headers, then ranged reads): without
    // TCP_NODELAY, Nagle's algorithm holds the last one until the client's delayed ACK, about
    // 40 ms per frame on a reused connection (measured: 148 → 5600 frames/s with it).
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight requests");
        let _ = stop_tx.send(());
    });
    on_ready(addr);
    let server = tokio::spawn(async move { server.await });
    let mut server = server;
    tokio::select! {
        r = &mut server => return r.context("server task")?.context("serving HTTP"),
        _ = stop_rx => {}
    }
    match tokio::time::timeout(grace, &mut server).await {
        Ok(r) => r.context("server task")?.context("serving HTTP"),
        Err(_) => {
            tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests did not finish within the grace period");
            server.abort();
            Ok(())
        }
    }
}
