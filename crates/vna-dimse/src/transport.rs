//! The byte stream under an association: plain TCP, or TLS as PS3.15 Annex B asks (The Basic
//! TLS Secure Transport Connection Profile, with the BCP 195 profile of §B.9: TLS 1.2 or 1.3
//! only, rustls's cipher suites, which are all AEAD with forward secrecy). The TLS
//! configuration is the caller's: the server's comes from a [`ServerTls`] each time a
//! connection is accepted, so a reloaded certificate applies to the next association.

use crate::error::DimseError;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Where the server's TLS configuration comes from (certificate, key, client verification);
/// asked once per accepted connection.
pub trait ServerTls: std::fmt::Debug + Send + Sync + 'static {
    fn config(&self) -> Arc<rustls::ServerConfig>;
}

/// TLS for an association we request: the client configuration (trusted roots, our own
/// certificate when the peer asks for one) and the name the peer's certificate must carry
/// (`None`: the host part of the address).
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: Option<String>,
}

/// The host part of `host:port` (`[::1]:104` gives `::1`): the name a server's certificate is
/// checked against when none is configured.
pub fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']')
}

/// A connection an association runs over.
pub enum Connection {
    Tcp(TcpStream),
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// What TLS established about the peer of an accepted connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPeer {
    /// The peer's end-entity certificate (DER), verified against the configured roots, when it
    /// presented one.
    pub certificate: Option<Arc<[u8]>>,
}

impl Connection {
    /// Runs the server side of a TLS handshake on `tcp` within `deadline`.
    pub async fn accept_tls(tcp: TcpStream, tls: &dyn ServerTls, deadline: Duration) -> Result<Connection, DimseError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
        match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Ok(Connection::TlsServer(Box::new(s))),
            Ok(Err(e)) => Err(DimseError::Tls(e)),
            Err(_) => Err(DimseError::Timeout { step: "the TLS handshake" }),
        }
    }

    /// Runs the client side of a TLS handshake on `tcp` to `host` within `deadline`.
    pub async fn connect_tls(tcp: TcpStream, tls: &ClientTls, host: &str, deadline: Duration) -> Result<Connection, DimseError> {
        let name = tls.server_name.as_deref().unwrap_or(host);
        let name = rustls::pki_types::ServerName::try_from(name.to_owned())
            .map_err(|e| DimseError::Tls(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        match tokio::time::timeout(deadline, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Ok(Connection::TlsClient(Box::new(s))),
            Ok(Err(e)) => Err(DimseError::Tls(e)),
            Err(_) => Err(DimseError::Timeout { step: "the TLS handshake" }),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Connection::Tcp(s) => s,
            Connection::TlsServer(s) => s.get_ref().0,
            Connection::TlsClient(s) => s.get_ref().0,
        }
    }

    /// `None` on plain TCP; on TLS, what the handshake established about the peer.
    pub fn tls_peer(&self) -> Option<TlsPeer> {
        let certs = match self {
            Connection::Tcp(_) => return None,
            Connection::TlsServer(s) => s.get_ref().1.peer_certificates(),
            Connection::TlsClient(s) => s.get_ref().1.peer_certificates(),
        };
        Some(TlsPeer { certificate: certs.and_then(|c| c.first()).map(|c| Arc::from(c.as_ref())) })
    }

    /// The read and write halves: plain TCP splits without a lock; the read half acknowledges
    /// at once (see `quickack`).
    pub(crate) fn split(self) -> (crate::quickack::QuickAckReader, Box<dyn AsyncWrite + Send + Unpin>) {
        match self {
            Connection::Tcp(s) => {
                let (r, w) = s.into_split();
                (crate::quickack::QuickAckReader::tcp(r), Box::new(w))
            }
            tls => {
                // A second descriptor of the same socket, for the quick-ACK option.
                let socket = socket2::SockRef::from(tls.tcp()).try_clone().ok();
                let (r, w) = tokio::io::split(tls);
                (crate::quickack::QuickAckReader::other(Box::new(r), socket), Box::new(w))
            }
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Connection::TlsServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Connection::TlsClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Connection::TlsServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Connection::TlsClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tcp(s) => Pin::new(s).poll_flush(cx),
            Connection::TlsServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Connection::TlsClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Connection::TlsServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Connection::TlsClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
