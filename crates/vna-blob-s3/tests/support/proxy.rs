//! A TCP proxy on 127.0.0.1 in front of the test S3 server, with faults switched on and off
//! by the test: refuse connections (the store is down), or flip one body byte of the first
//! PUT on each connection (a corrupted transfer). Shared by the S3 backend tests and the
//! end-to-end tests (`#[path]`-included).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub struct ProxyFaults {
    /// New and existing connections are closed at once.
    pub down: AtomicBool,
    /// One byte of the first PUT body on each new connection is flipped.
    pub corrupt_put: AtomicBool,
    /// Requests are accepted but nothing is forwarded: a store that hangs.
    pub stall: AtomicBool,
}

pub struct Proxy {
    pub url: String,
    pub faults: Arc<ProxyFaults>,
}

/// Starts a proxy to `upstream` (`http://host:port`).
pub async fn start(upstream: &str) -> Proxy {
    let target = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let url = format!("http://{}", listener.local_addr().expect("proxy addr"));
    let faults = Arc::new(ProxyFaults::default());
    let f = faults.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            if f.down.load(Ordering::SeqCst) {
                drop(client);
                continue;
            }
            let target = target.clone();
            let f = f.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&target).await else { return };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let corrupt = f.corrupt_put.load(Ordering::SeqCst);
                pipe(client, server, corrupt, f).await;
            });
        }
    });
    Proxy { url, faults }
}

async fn pipe(client: TcpStream, server: TcpStream, corrupt: bool, faults: Arc<ProxyFaults>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let f2 = faults.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = Vec::new();
        let mut armed = corrupt;
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if f2.down.load(Ordering::SeqCst) {
                break;
            }
            while f2.stall.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            if armed {
                // Find the end of the first request's headers, then flip a byte of the body.
                let start = seen.len();
                seen.extend_from_slice(&buf[..n]);
                if seen.starts_with(b"PUT ") {
                    if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let body_at = end + 4;
                        if body_at + 1 < seen.len() && body_at + 1 >= start {
                            buf[body_at + 1 - start] ^= 0xFF;
                            armed = false;
                        }
                    }
                } else if seen.len() >= 4 {
                    armed = false;
                }
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if faults.down.load(Ordering::SeqCst) {
                break;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}
