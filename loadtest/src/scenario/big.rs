//! `big`: one object of `--size-mb` streamed through STOW-RS (header first, then pixel bytes
//! generated chunk by chunk: the client never holds it), then retrieved streaming through
//! WADO-RS and checked by size and SHA-256. With the server's PID this shows whether the
//! archive's memory grows with object size.

use super::Target;
use crate::http;
use crate::objects::{big_header, PixelStream, BIG_FRAME_BYTES};
use crate::procmon::Monitor;
use crate::report::ScenarioReport;
use crate::stats::{OpOk, Tally};
use anyhow::{bail, ensure};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Pixel bytes generated per chunk: small enough to keep each poll of the body short.
const CHUNK: usize = 256 * 1024;
const INSTANCE_ACCEPT: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

#[derive(Debug, Clone, Copy)]
pub struct BigOpts {
    pub seed: u64,
    pub size_mb: u64,
}

/// The upload body in order: multipart opening, Part 10 header, pixels, closing.
enum Stage {
    Opening,
    Header,
    Pixels,
    Closing,
    Done,
}

struct Upload {
    stage: Stage,
    header: Bytes,
    pixels: PixelStream,
    hash: Sha256,
    digest: Arc<Mutex<Option<String>>>,
}

impl Upload {
    fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.stage {
                Stage::Opening => {
                    self.stage = Stage::Header;
                    return Some(http::stow_opening());
                }
                Stage::Header => {
                    self.stage = Stage::Pixels;
                    self.hash.update(&self.header);
                    return Some(self.header.clone());
                }
                Stage::Pixels => match self.pixels.next_chunk() {
                    Some(chunk) => {
                        self.hash.update(&chunk);
                        return Some(chunk);
                    }
                    None => {
                        let digest = hex(&std::mem::take(&mut self.hash).finalize());
                        if let Ok(mut d) = self.digest.lock() {
                            *d = Some(digest);
                        }
                        self.stage = Stage::Closing;
                    }
                },
                Stage::Closing => {
                    self.stage = Stage::Done;
                    return Some(http::stow_closing());
                }
                Stage::Done => return None,
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn run(target: &Target, opts: BigOpts) -> anyhow::Result<Vec<ScenarioReport>> {
    let pixel_bytes = opts.size_mb.max(1) << 20;
    ensure!(pixel_bytes < u64::from(u32::MAX), "--size-mb must be below 4096: native pixel data has a 32-bit length");
    debug_assert_eq!(pixel_bytes % BIG_FRAME_BYTES, 0);
    let (uids, header) = big_header(opts.seed, "big", pixel_bytes);
    let total = header.len() as u64 + pixel_bytes;
    let digest = Arc::new(Mutex::new(None));
    let upload = Upload {
        stage: Stage::Opening,
        header: Bytes::from(header),
        pixels: PixelStream::new(opts.seed, pixel_bytes, CHUNK),
        hash: Sha256::new(),
        digest: digest.clone(),
    };
    let body = futures::stream::unfold(upload, |mut u| async move { u.next().map(|b| (Ok::<_, std::io::Error>(b), u)) });

    let monitor = Monitor::start(target.server_pid);
    let mut store = Tally::new(1);
    let t = Instant::now();
    let outcome = http::stow(&target.client, &target.base, body, 1, None).await;
    let stored = outcome.is_ok();
    store.record(t.elapsed(), outcome.map(|()| OpOk { kind: 0, items: 1, bytes: total, verified: 1, mismatches: 0 }));
    store.elapsed = t.elapsed();
    let (server, client_cpu) = monitor.finish().await;
    let sent = digest.lock().ok().and_then(|d| d.clone()).unwrap_or_default();
    let store_report = ScenarioReport::new("big_store", "objects", 1, &store, &["store"], server)
        .client_cpu(client_cpu)
        .note("object_bytes", total)
        .note("sha256", sent.clone())
        .note("streamed", true);
    if !stored {
        return Ok(vec![store_report]);
    }

    let monitor = Monitor::start(target.server_pid);
    let mut retrieve = Tally::new(1);
    let t = Instant::now();
    let outcome = fetch(target, &uids.path(), total, &sent).await;
    let matched = matches!(outcome, Ok(ref ok) if ok.verified == 1);
    retrieve.record(t.elapsed(), outcome);
    retrieve.elapsed = t.elapsed();
    let (server, client_cpu) = monitor.finish().await;
    let retrieve_report = ScenarioReport::new("big_retrieve", "objects", 1, &retrieve, &["retrieve"], server)
        .client_cpu(client_cpu)
        .note("object_bytes", total)
        .note("sha256_match", matched);
    Ok(vec![store_report, retrieve_report])
}

/// Retrieves the instance streaming, hashing as it comes; a size or hash difference is a
/// mismatch, not an error (the request itself worked).
async fn fetch(target: &Target, path: &str, expected_len: u64, expected_sha: &str) -> anyhow::Result<OpOk> {
    let mut hash = Sha256::new();
    let mut len = 0u64;
    let url = format!("{}{}", target.base, path);
    let parts = http::get_multipart(&target.client, &url, INSTANCE_ACCEPT, None, |part, chunk| {
        if part == 0 {
            hash.update(chunk);
            len += chunk.len() as u64;
        }
    })
    .await?;
    if parts != 1 {
        bail!("retrieve returned {parts} parts, expected 1");
    }
    let same = len == expected_len && hex(&hash.finalize()) == expected_sha;
    Ok(OpOk { kind: 0, items: 1, bytes: len, verified: u64::from(same), mismatches: u64::from(!same) })
}
