//! The HTTP application the binary serves (`vna::app`), served in-process over an archive the
//! test built itself, e.g. on a fault-injecting blob store or a failing catalog.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vna_archive::{Archive, ArchiveConfig};
use vna_blob::faulty::{Faults, FaultyBlobStore};
use vna_blob::fs::FsBlobStore;
use vna_blob::BlobStore;
use vna_catalog::{Catalog, SqliteCatalog};

/// A running in-process server; stops when dropped.
pub struct InProcess {
    /// DICOMweb root URL.
    pub base: String,
    pub archive: Arc<Archive>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `vna::app` over `archive` on 127.0.0.1, on a free port.
pub async fn serve(archive: Arc<Archive>) -> InProcess {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("bound address");
    let config = vna_config::Config::default();
    let auth = vna_auth::Authenticator::new(archive.clone(), vna::auth_settings(&config.auth)).expect("authentication settings");
    let app = vna::app(archive.clone(), auth, &config, Some(addr.port()));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await {
            eprintln!("in-process server failed: {e}");
        }
    });
    InProcess { base: format!("http://{addr}{}", config.http.dicomweb_root), archive, task }
}

/// A temp directory holding a filesystem blob store (`blobs/`) under a fault-injecting wrapper
/// and an SQLite catalog file.
pub struct FaultyFixture {
    pub dir: tempfile::TempDir,
    pub faults: Arc<Faults>,
    pub store: Arc<dyn BlobStore>,
    pub sqlite: Arc<SqliteCatalog>,
}

impl FaultyFixture {
    pub async fn new() -> FaultyFixture {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        let fs = FsBlobStore::open(dir.path().join("blobs")).await.expect("opening the blob store");
        let (faulty, faults) = FaultyBlobStore::new(fs);
        let sqlite = SqliteCatalog::open(&dir.path().join("catalog.sqlite")).await.expect("opening the catalog");
        FaultyFixture { dir, faults, store: Arc::new(faulty), sqlite: Arc::new(sqlite) }
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.dir.path().join("blobs")
    }

    /// Builds an archive over the faulty store and `catalog` (the SQLite one unless a test wraps it).
    pub fn archive(&self, catalog: Arc<dyn Catalog>, config: ArchiveConfig) -> Arc<Archive> {
        let mut tiers: HashMap<String, Arc<dyn BlobStore>> = HashMap::new();
        tiers.insert(config.default_tier.clone(), self.store.clone());
        Archive::new(catalog, tiers, config).expect("building the archive")
    }

    /// Files under `blobs/objects` and `blobs/tmp`.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        blob_files(&self.blob_dir())
    }
}

/// The objects of a filesystem blob store rooted at `root`: files under `objects/` and `tmp/`,
/// and each packed object still in a segment as `packs/<key>` (not a file: small objects share
/// segment files, `vna_blob::fs::packed_keys`).
pub fn blob_files(root: &Path) -> Vec<PathBuf> {
    let mut files = crate::files_under(&root.join("objects"));
    files.extend(crate::files_under(&root.join("tmp")));
    let packed = vna_blob::fs::packed_keys(root).expect("listing the packed objects");
    files.extend(packed.into_iter().map(|k| root.join("packs").join(k)));
    files
}
