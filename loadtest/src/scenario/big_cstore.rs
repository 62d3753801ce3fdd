//! `big-cstore`: one object of `--size-mb` sent through DIMSE C-STORE as a stream — a bare data
//! set (no preamble, no meta) whose pixel bytes are generated chunk by chunk inside an
//! `AsyncRead`, hashed as they go, never held — then retrieved through WADO-RS and checked by
//! the size and SHA-256 of its data set part (the archive puts its own meta group in front).
//! With the server's PID this shows whether the DIMSE path's memory grows with object size.

use super::Target;
use crate::corpus::EXPLICIT_VR_LE;
use crate::dimse::{check_store, dataset_offset, hex, DatasetHasher, DimseTarget};
use crate::http;
use crate::objects::{big_header, PixelStream, BIG_FRAME_BYTES, MULTIFRAME_GRAYSCALE_WORD_SC};
use crate::procmon::Monitor;
use crate::report::ScenarioReport;
use crate::stats::{OpOk, Tally};
use anyhow::{bail, ensure};
use bytes::{Buf, Bytes};
use sha2::{Digest, Sha256};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};
use vna_dimse::ProposedContext;

/// Pixel bytes generated per chunk (as for `big`).
const CHUNK: usize = 256 * 1024;
/// Bound on each read and write of the association; the response waits for the archive's
/// final fsync and catalogue commit of the whole object.
const IO_TIMEOUT: Duration = Duration::from_secs(600);
const INSTANCE_ACCEPT: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";

#[derive(Debug, Clone, Copy)]
pub struct BigCstoreOpts {
    pub seed: u64,
    pub size_mb: u64,
}

/// The data set as a reader: the header (up to the Pixel Data element header), then generated
/// pixel chunks. Publishes (length, SHA-256) once the reader has reached its end.
struct Generated {
    head: Option<Bytes>,
    pixels: PixelStream,
    current: Bytes,
    hash: Sha256,
    len: u64,
    done: Arc<Mutex<Option<(u64, String)>>>,
}

impl AsyncRead for Generated {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.current.is_empty() {
            match this.head.take().or_else(|| this.pixels.next_chunk()) {
                Some(next) => this.current = next,
                None => {
                    // End of data (read returns 0 bytes): publish the digest once.
                    if let Ok(mut d) = this.done.lock() {
                        if d.is_none() {
                            *d = Some((this.len, hex(&std::mem::take(&mut this.hash).finalize())));
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
        let n = buf.remaining().min(this.current.len());
        buf.put_slice(&this.current[..n]);
        this.hash.update(&this.current[..n]);
        this.len += n as u64;
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

pub async fn run(target: &Target, dimse: &DimseTarget, opts: BigCstoreOpts) -> anyhow::Result<ScenarioReport> {
    let pixel_bytes = opts.size_mb.max(1) << 20;
    ensure!(pixel_bytes < u64::from(u32::MAX), "--size-mb must be below 4096: native pixel data has a 32-bit length");
    debug_assert_eq!(pixel_bytes % BIG_FRAME_BYTES, 0);
    let (uids, part10) = big_header(opts.seed, "big-cstore", pixel_bytes);
    let head = Bytes::from(part10);
    let head = head.slice(dataset_offset(&head)?..);
    let total = head.len() as u64 + pixel_bytes;
    let done = Arc::new(Mutex::new(None));
    let reader = Generated {
        head: Some(head),
        pixels: PixelStream::new(opts.seed, pixel_bytes, CHUNK),
        current: Bytes::new(),
        hash: Sha256::new(),
        len: 0,
        done: done.clone(),
    };

    let monitor = Monitor::start(target.server_pid);
    let mut tally = Tally::new(1);
    let t = Instant::now();
    let stored = store(dimse, &uids.instance, reader).await;
    let store_time = t.elapsed();
    tally.elapsed = store_time;
    let (server, client_cpu) = monitor.finish().await;
    let sent = done.lock().ok().and_then(|d| d.clone());
    let report = |tally: &Tally| {
        ScenarioReport::new("big_cstore", "objects", 1, tally, &["c-store"], server.clone())
            .client_cpu(client_cpu)
            .note("protocol", "DIMSE C-STORE, Explicit VR Little Endian, data set streamed")
            .note("data_set_bytes", total)
            .note("sha256", sent.as_ref().map(|s| s.1.clone()).unwrap_or_default())
    };
    if let Err(e) = stored {
        tally.record(store_time, Err(e));
        return Ok(report(&tally));
    }
    let Some((sent_len, sent_sha)) = sent.clone() else {
        tally.record(store_time, Err(anyhow::anyhow!("the data set reader never reached its end")));
        return Ok(report(&tally));
    };

    let monitor = Monitor::start(target.server_pid);
    let t = Instant::now();
    let fetched = fetch(target, &uids.path()).await;
    let retrieve_s = t.elapsed().as_secs_f64();
    let (retrieve_server, _) = monitor.finish().await;
    let (same, fetch_note) = match &fetched {
        Ok((len, sha)) => (*len == sent_len && *sha == sent_sha, format!("{len} bytes, sha256 {sha}")),
        Err(e) => (false, format!("{e:#}")),
    };
    tally.record(store_time, Ok(OpOk { kind: 0, items: 1, bytes: total, verified: u64::from(same), mismatches: u64::from(!same) }));
    tally.elapsed = store_time;
    let retrieve_mb_s = fetched.as_ref().map_or(0.0, |(len, _)| *len as f64 / 1e6 / retrieve_s.max(1e-9));
    Ok(report(&tally)
        .note("sha256_match", same)
        .note("retrieved", fetch_note)
        .note("retrieve_s", retrieve_s)
        .note("retrieve_mb_per_s", retrieve_mb_s)
        .note("retrieve_server_peak_rss_mb", retrieve_server.map_or(0.0, |s| s.peak_rss_sampled_mb)))
}

async fn store(dimse: &DimseTarget, instance: &str, reader: Generated) -> anyhow::Result<()> {
    let contexts = [ProposedContext::new(MULTIFRAME_GRAYSCALE_WORD_SC, &[EXPLICIT_VR_LE])];
    let mut client = dimse.connect(&contexts, IO_TIMEOUT).await?;
    let rsp = client.store(MULTIFRAME_GRAYSCALE_WORD_SC, instance, EXPLICIT_VR_LE, reader).await?;
    check_store(&rsp, instance)?;
    client.release().await?;
    Ok(())
}

/// Retrieves the instance streaming; returns the length and SHA-256 of its data set part.
async fn fetch(target: &Target, path: &str) -> anyhow::Result<(u64, String)> {
    let mut hasher = DatasetHasher::default();
    let url = format!("{}{}", target.base, path);
    let parts = http::get_multipart(&target.client, &url, INSTANCE_ACCEPT, None, |part, chunk| {
        if part == 0 {
            hasher.update(chunk);
        }
    })
    .await?;
    if parts != 1 {
        bail!("retrieve returned {parts} parts, expected 1");
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn generated_reader_yields_head_then_pixels_and_publishes_the_digest() {
        let done = Arc::new(Mutex::new(None));
        let head = Bytes::from_static(b"HEAD");
        let mut r = Generated {
            head: Some(head),
            pixels: PixelStream::new(3, 1000, 64),
            current: Bytes::new(),
            hash: Sha256::new(),
            len: 0,
            done: done.clone(),
        };
        let mut all = Vec::new();
        r.read_to_end(&mut all).await.expect("in-memory reader");
        assert_eq!(all.len(), 1004);
        assert_eq!(&all[..4], b"HEAD");
        let mut expected = b"HEAD".to_vec();
        let mut p = PixelStream::new(3, 1000, 64);
        while let Some(c) = p.next_chunk() {
            expected.extend_from_slice(&c);
        }
        assert_eq!(all, expected);
        assert_eq!(done.lock().expect("lock").clone(), Some((1004, hex(&Sha256::digest(&expected)))));
    }
}
