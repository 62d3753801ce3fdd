//! TLS on the HTTP and DIMSE listeners (rustls, TLS 1.2 and 1.3 only, as BCP 195 asks; PS3.15
//! Annex B for DICOM): the certificate chain and key come from PEM files and are reloaded when
//! a file changes (checked every few seconds) or on SIGHUP, without dropping a connection; a
//! file that does not load keeps the previous certificate and says why. HTTP handshakes run
//! beside the accept loop, each with a deadline, so a slow or silent client holds up nobody;
//! DIMSE handshakes run in each association's task. On DIMSE, client certificates are asked
//! for when a CA file is configured, verified against it, and handed to the SCP, which binds
//! them to AE titles; C-MOVE destinations get a client configuration trusting the same CAs.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How often the files are looked at for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(5);
/// A client gets this long to finish its handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// The certificate chain and private key files, and for DIMSE the CA certificates client
/// certificates are verified against.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Ask for client certificates and verify them against these CAs.
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a certificate (with `client_ca`).
    pub require_client_certificate: bool,
}

impl TlsFiles {
    /// A certificate and key, no client certificates.
    pub fn server(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsFiles {
        TlsFiles { cert: cert.into(), key: key.into(), client_ca: None, require_client_certificate: false }
    }

    fn modified(&self) -> Option<Vec<SystemTime>> {
        let m = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()].into_iter().flatten().map(m).collect()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certificates(path: &std::path::Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading the certificates {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificates {}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

fn roots(path: &std::path::Path) -> anyhow::Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).with_context(|| format!("a CA certificate of {} is not usable", path.display()))?;
    }
    Ok(Arc::new(roots))
}

/// The server configuration from `files`: TLS 1.2 and 1.3, client certificates as `files`
/// say, the application protocols of `alpn`.
pub fn server_config(files: &TlsFiles, alpn: &[&[u8]]) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| format!("reading the private key {}", files.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
            let verifier = if files.require_client_certificate { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(verifier.build().context("the client certificate verifier")?)
        }
    };
    let mut config = builder.with_single_cert(certs, key).context("the certificate and the key do not go together")?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration trusting the CAs of `ca` and presenting the certificate of `files`
/// to servers that ask: for C-MOVE sub-associations to TLS destinations.
pub fn client_config(files: Option<&TlsFiles>, ca: &std::path::Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_root_certificates(roots(ca)?);
    let config = match files {
        None => builder.with_no_client_auth(),
        Some(f) => {
            let key = PrivateKeyDer::from_pem_file(&f.key).with_context(|| format!("reading the private key {}", f.key.display()))?;
            builder.with_client_auth_cert(certificates(&f.cert)?, key).context("the certificate and the key do not go together")?
        }
    };
    Ok(Arc::new(config))
}

/// A server configuration kept current with its files (see the module comment).
#[derive(Debug)]
pub struct Reloading {
    current: RwLock<Arc<ServerConfig>>,
}

impl Reloading {
    /// Loads `files` now (a bad file fails the start) and watches them from then on.
    pub fn start(files: TlsFiles, alpn: &'static [&'static [u8]]) -> anyhow::Result<Arc<Reloading>> {
        let me = Arc::new(Reloading { current: RwLock::new(server_config(&files, alpn)?) });
        tokio::spawn(reload(files, alpn, Arc::downgrade(&me)));
        Ok(me)
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl vna_dimse::ServerTls for Reloading {
    fn config(&self) -> Arc<ServerConfig> {
        self.current()
    }
}

/// Connections that finished their handshake, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ended (runtime shutting down): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Serves TLS on `tcp` with the certificate of `files` (loaded now: a bad file fails the start).
pub fn listen(tcp: TcpListener, files: TlsFiles) -> anyhow::Result<TlsListener> {
    let local = tcp.local_addr().context("reading the bound HTTP address")?;
    let current = Reloading::start(files, &[b"http/1.1"])?;
    let (tx, ready) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Responses go out in several writes: see `run` on TCP_NODELAY.
            let _ = stream.set_nodelay(true);
            let config = current.current();
            let sender = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_DEADLINE, TlsAcceptor::from(config).accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = sender.send((tls, peer)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "tls handshake failed"),
                    Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                }
            });
            if tx.is_closed() {
                break;
            }
        }
    });
    Ok(TlsListener { ready, local })
}

/// Reloads the certificate when a file changes or on SIGHUP, for as long as `current` is used.
async fn reload(files: TlsFiles, alpn: &'static [&'static [u8]], current: std::sync::Weak<Reloading>) {
    let mut seen = files.modified();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let signalled = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        let asked = tokio::select! {
            s = signalled => s,
            () = tokio::time::sleep(RELOAD_CHECK) => false,
        };
        let now = files.modified();
        if !asked && now == seen {
            continue;
        }
        let Some(current) = current.upgrade() else { return };
        match server_config(&files, alpn) {
            Ok(c) => {
                *current.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = c;
                // Only a load that worked settles the change: a half-written pair is tried again.
                seen = now;
                tracing::info!(cert = %files.cert.display(), "tls certificate reloaded");
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "tls certificate not reloaded: the previous one stays"),
        }
    }
}
