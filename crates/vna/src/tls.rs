//! TLS on the HTTP listener (rustls, TLS 1.2 and 1.3 only, as BCP 195 asks): the certificate
//! chain and key come from PEM files and are reloaded when either file changes (checked every
//! few seconds) or on SIGHUP, without dropping a connection; a file that does not load keeps the
//! previous certificate and says why. Handshakes run beside the accept loop, each with a
//! deadline, so a slow or silent client holds up nobody.

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

/// The certificate chain and private key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let m = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((m(&self.cert)?, m(&self.key)?))
    }
}

/// The server configuration from `files`: TLS 1.2 and 1.3, HTTP/1.1.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading the certificate chain {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificate chain {}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).with_context(|| format!("reading the private key {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and the key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
    let current = Arc::new(RwLock::new(server_config(&files)?));
    let (tx, ready) = mpsc::channel(64);
    tokio::spawn(reload(files, current.clone()));
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
            let config = current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
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

/// Reloads the certificate when a file changes or on SIGHUP.
async fn reload(files: TlsFiles, current: Arc<RwLock<Arc<ServerConfig>>>) {
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
        match server_config(&files) {
            Ok(c) => {
                *current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = c;
                // Only a load that worked settles the change: a half-written pair is tried again.
                seen = now;
                tracing::info!(cert = %files.cert.display(), "tls certificate reloaded");
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "tls certificate not reloaded: the previous one stays"),
        }
    }
}
