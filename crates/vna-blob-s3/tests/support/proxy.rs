//! A TCP proxy on 127.0.0.1 in front of the test S3 server, with faults switched on and off
//! by the test: refuse connections (the store is down), or flip one body byte of the first
//! PUT on each connection (a corrupted transfer). Shared by the S3 backend tests and the
//! end-to-end tests (`#[path]`-included).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut corrupter = FirstPutCorrupter { armed: corrupt, seen: Vec::new() };
    let up = forward(cr, sw, faults.clone(), move |bytes| corrupter.apply(bytes));
    let down = forward(sr, cw, faults, |_| ());
    tokio::join!(up, down);
}

/// Copies one direction until either side closes or the proxy goes down, holding the bytes
/// while it stalls, passing each read through `edit` first.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, faults: Arc<ProxyFaults>, mut edit: impl FnMut(&mut [u8])) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while faults.stall.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if faults.down.load(Ordering::SeqCst) {
            break;
        }
        edit(&mut buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Flips the second body byte of the connection's first request, if that is a PUT.
struct FirstPutCorrupter {
    armed: bool,
    /// The connection's bytes so far, while armed.
    seen: Vec<u8>,
}

impl FirstPutCorrupter {
    fn apply(&mut self, bytes: &mut [u8]) {
        if !self.armed {
            return;
        }
        let start = self.seen.len();
        self.seen.extend_from_slice(bytes);
        if !self.seen.starts_with(b"PUT ") {
            self.armed = self.seen.len() < 4;
            return;
        }
        if let Some(end) = self.seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let target = end + 4 + 1;
            if target < self.seen.len() && target >= start {
                bytes[target - start] ^= 0xFF;
                self.armed = false;
            }
        }
    }
}
