//! `huge`: one encapsulated object larger than 4 GiB — past every 32-bit length — stored
//! through STOW-RS or DIMSE C-STORE, retrieved whole through WADO-RS (size and SHA-256
//! compared), then read at random the way its users do: tiles of a slide through
//! `/frames/{n}`, byte ranges of a video through `/rendered` with HTTP Range. The client
//! generates the object as it sends it and regenerates any tile or range to check it, so
//! neither side ever needs the object in memory; with the server's PID the report shows
//! whether the archive's memory grows with it.
//!
//! Kinds:
//! - `slide`: VL Whole Slide Microscopy, JPEG-like tiles, one fragment per frame, an empty
//!   Basic Offset Table and an Extended Offset Table (64-bit offsets, PS3.5 §A.4);
//! - `slide-fragments`: the same tiles, each split in two fragments, no offset table at all
//!   (the archive finds frame starts by their SOI markers);
//! - `video`: a Video Photographic Image under the fragmentable MPEG-4 AVC syntax
//!   (1.2.840.10008.1.2.4.102.1), its stream in 1 GiB fragments (the bytes are pseudo-random:
//!   the archive never decodes a video).

use super::{Target, REQUEST_TIMEOUT};
use crate::dimse::{check_store, dataset_offset, hex, DatasetHasher, DimseTarget};
use crate::http;
use crate::objects::{ObjectUids, JPEG_BASELINE, VL_WHOLE_SLIDE_MICROSCOPY};
use crate::prng::SplitMix64;
use crate::procmon::Monitor;
use crate::report::ScenarioReport;
use crate::stats::{drive, OpOk, Tally};
use anyhow::{bail, ensure, Context};
use bytes::{Buf, Bytes};
use sha2::{Digest, Sha256};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, ReadBuf};
use vna_dicom::tags;
use vna_dicom::write::{element_header, item_header, part10, Items, SEQUENCE_DELIMITER};
use vna_dicom::{Tag, VR};
use vna_dimse::ProposedContext;

const VIDEO_PHOTOGRAPHIC: &str = "1.2.840.10008.5.1.4.1.1.77.1.4.1";
const H264_FRAGMENTABLE: &str = "1.2.840.10008.1.2.4.102.1";
/// Tile size of the slides (even, so no fragment needs padding).
const TILE_BYTES: u64 = 256 * 1024;
/// Fragment size of the video stream.
const VIDEO_FRAGMENT: u64 = 1 << 30;
/// Unit of deterministic generation: any range is regenerated from its blocks.
const BLOCK: u64 = 64 * 1024;
const INSTANCE_ACCEPT: &str = "multipart/related; type=\"application/dicom\"; transfer-syntax=*";
const FRAME_ACCEPT: &str = "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*";
const IO_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Slide,
    SlideFragments,
    Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    Stow,
    Cstore,
}

#[derive(Debug, Clone, Copy)]
pub struct HugeOpts {
    pub seed: u64,
    pub kind: Kind,
    pub via: Via,
    pub size_mb: u64,
    pub concurrency: usize,
    pub requests: usize,
}

/// The object: its header and how its payload (tiles or stream) is laid out.
struct Layout {
    uids: ObjectUids,
    sop_class: &'static str,
    transfer_syntax: &'static str,
    /// Part 10 bytes up to and including the first item header after the offset table.
    header: Vec<u8>,
    /// Payload units (tiles or video fragments): their lengths.
    units: u64,
    unit_bytes: u64,
    /// Fragments per tile (slides) — 1 or 2.
    split: u64,
}

impl Layout {
    fn new(seed: u64, kind: Kind, size_mb: u64) -> Self {
        let size = size_mb.max(1) << 20;
        let what = match kind {
            Kind::Slide => "huge-slide",
            Kind::SlideFragments => "huge-slide-fragments",
            Kind::Video => "huge-video",
        };
        let uids = ObjectUids::new(seed, what);
        let (unit_bytes, split) = match kind {
            // 1 GiB fragments; a small object (a smoke test) still gets four of them.
            Kind::Video => (VIDEO_FRAGMENT.min(size.div_ceil(4).div_ceil(BLOCK) * BLOCK), 1),
            Kind::Slide => (TILE_BYTES, 1),
            Kind::SlideFragments => (TILE_BYTES, 2),
        };
        let units = size.div_ceil(unit_bytes).max(1);
        let ds = crate::objects::patient(Items::new(), "LTHUGE", "HUGE^LOADTEST")
            .str(tags::STUDY_INSTANCE_UID, VR::UI, &uids.study)
            .str(tags::SERIES_INSTANCE_UID, VR::UI, &uids.series)
            .str(tags::SOP_INSTANCE_UID, VR::UI, &uids.instance)
            .u16(tags::SAMPLES_PER_PIXEL, 3)
            .u16(tags::PLANAR_CONFIGURATION, 0)
            .u16(tags::BITS_ALLOCATED, 8)
            .u16(tags::BITS_STORED, 8)
            .u16(tags::HIGH_BIT, 7)
            .u16(tags::PIXEL_REPRESENTATION, 0);
        let (sop_class, transfer_syntax, ds) = match kind {
            Kind::Video => (
                VIDEO_PHOTOGRAPHIC,
                H264_FRAGMENTABLE,
                ds.str(tags::SOP_CLASS_UID, VR::UI, VIDEO_PHOTOGRAPHIC)
                    .str(tags::MODALITY, VR::CS, "XC")
                    .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "YBR_PARTIAL_420")
                    .u16(tags::ROWS, 1080)
                    .u16(tags::COLUMNS, 1920)
                    .str(tags::NUMBER_OF_FRAMES, VR::IS, "90000")
                    .bytes(tags::FRAME_INCREMENT_POINTER, VR::AT, vec![0x18, 0x00, 0x63, 0x10])
                    .str(tags::FRAME_TIME, VR::DS, "40")
                    .str(tags::CINE_RATE, VR::IS, "25"),
            ),
            Kind::Slide | Kind::SlideFragments => {
                let side = (units as f64).sqrt().ceil() as u32;
                let mut ds = ds
                    .str(tags::SOP_CLASS_UID, VR::UI, VL_WHOLE_SLIDE_MICROSCOPY)
                    .str(tags::MODALITY, VR::CS, "SM")
                    .str(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\VOLUME\\NONE")
                    .str(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "YBR_FULL_422")
                    .str(tags::NUMBER_OF_FRAMES, VR::IS, &units.to_string())
                    .u16(tags::ROWS, 256)
                    .u16(tags::COLUMNS, 256)
                    .str(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "TILED_FULL")
                    .bytes(tags::TOTAL_PIXEL_MATRIX_COLUMNS, VR::UL, (side * 256).to_le_bytes().to_vec())
                    .bytes(tags::TOTAL_PIXEL_MATRIX_ROWS, VR::UL, (side * 256).to_le_bytes().to_vec());
                if kind == Kind::Slide {
                    // Extended Offset Table: 64-bit offset of each frame's item from the first
                    // fragment's item, and each frame's length.
                    let (mut offsets, mut lengths) = (Vec::with_capacity(units as usize * 8), Vec::with_capacity(units as usize * 8));
                    for n in 0..units {
                        offsets.extend_from_slice(&(n * (TILE_BYTES + 8)).to_le_bytes());
                        lengths.extend_from_slice(&TILE_BYTES.to_le_bytes());
                    }
                    ds = ds.bytes(Tag(0x7FE0, 0x0001), VR::OV, offsets).bytes(Tag(0x7FE0, 0x0002), VR::OV, lengths);
                }
                (VL_WHOLE_SLIDE_MICROSCOPY, JPEG_BASELINE, ds)
            }
        };
        let mut header = part10(&ds, transfer_syntax);
        header.extend(element_header(Tag(0x7FE0, 0x0010), VR::OB, u32::MAX));
        header.extend(item_header(0));
        Layout { uids, sop_class, transfer_syntax, header, units, unit_bytes, split }
    }

    /// Bytes of the whole object.
    fn total(&self) -> u64 {
        let fragments = self.units * self.split;
        self.header.len() as u64 + fragments * 8 + self.units * self.unit_bytes + SEQUENCE_DELIMITER.len() as u64
    }
}

/// Payload bytes `[offset, offset+len)` of unit `n` (a tile or a video fragment), generated
/// block by block from the seed so that any range can be made again on its own. A tile
/// starts with SOI and APP0 and ends with EOI, like a JPEG.
fn unit_bytes(seed: u64, n: u64, unit_len: u64, offset: u64, out: &mut Vec<u8>, len: u64, tile: bool) {
    let end = offset + len;
    let mut at = offset;
    while at < end {
        let block = at / BLOCK;
        let mut buf = vec![0u8; BLOCK as usize];
        SplitMix64::derive(seed, "huge-block", n.wrapping_mul(1 << 20) + block).fill(&mut buf);
        if tile && block == 0 {
            buf[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
        }
        // The second half of a tile (a fragment of its own in `slide-fragments`) must not
        // begin like a frame (JPEG SOI, J2K SOC, JP2 signature).
        let half = unit_len / 2;
        if tile && half / BLOCK == block {
            buf[(half % BLOCK) as usize] = 0x01;
        }
        if tile && (block + 1) * BLOCK >= unit_len {
            let last = ((unit_len - 1) % BLOCK) as usize;
            buf[last - 1] = 0xFF;
            buf[last] = 0xD9;
        }
        let from = (at - block * BLOCK) as usize;
        let to = ((end - block * BLOCK).min(BLOCK)) as usize;
        out.extend_from_slice(&buf[from..to]);
        at = block * BLOCK + to as u64;
    }
}

/// The object as a sequence of chunks, generated on demand, hashed as they go.
struct Generator {
    seed: u64,
    tile: bool,
    header: Option<Bytes>,
    units: u64,
    unit_len: u64,
    split: u64,
    /// Next unit, the fragment within it, and the offset within that fragment.
    unit: u64,
    piece: u64,
    at: u64,
    closed: bool,
    hash: Sha256,
    len: u64,
    done: Digest64,
}

/// Length and SHA-256 of what a generator produced, once it has produced everything.
type Digest64 = Arc<Mutex<Option<(u64, String)>>>;

impl Generator {
    fn new(seed: u64, layout: &Layout, header: Bytes) -> (Self, Digest64) {
        let done = Arc::new(Mutex::new(None));
        let g = Generator {
            seed,
            tile: layout.sop_class == VL_WHOLE_SLIDE_MICROSCOPY,
            header: Some(header),
            units: layout.units,
            unit_len: layout.unit_bytes,
            split: layout.split,
            unit: 0,
            piece: 0,
            at: 0,
            closed: false,
            hash: Sha256::new(),
            len: 0,
            done: done.clone(),
        };
        (g, done)
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        let chunk = self.make();
        if let Some(c) = &chunk {
            self.hash.update(c);
            self.len += c.len() as u64;
        } else if let Ok(mut d) = self.done.lock() {
            if d.is_none() {
                *d = Some((self.len, hex(&std::mem::take(&mut self.hash).finalize())));
            }
        }
        chunk
    }

    fn make(&mut self) -> Option<Bytes> {
        if let Some(h) = self.header.take() {
            return Some(h);
        }
        if self.unit >= self.units {
            if self.closed {
                return None;
            }
            self.closed = true;
            return Some(Bytes::from_static(&SEQUENCE_DELIMITER));
        }
        let piece_len = self.unit_len / self.split;
        let mut out = Vec::with_capacity(BLOCK as usize * 4 + 8);
        if self.at == 0 {
            out.extend_from_slice(&item_header(piece_len as u32));
        }
        let start = self.piece * piece_len + self.at;
        let take = (piece_len - self.at).min(BLOCK * 4);
        unit_bytes(self.seed, self.unit, self.unit_len, start, &mut out, take, self.tile);
        self.at += take;
        if self.at == piece_len {
            self.at = 0;
            self.piece += 1;
            if self.piece == self.split {
                self.piece = 0;
                self.unit += 1;
            }
        }
        Some(Bytes::from(out))
    }
}

/// The generator as the data set reader of a C-STORE.
struct Reader {
    gen: Generator,
    current: Bytes,
}

impl AsyncRead for Reader {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut std::task::Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.current.is_empty() {
            match this.gen.next_chunk() {
                Some(c) => this.current = c,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = buf.remaining().min(this.current.len());
        buf.put_slice(&this.current[..n]);
        this.current.advance(n);
        Poll::Ready(Ok(()))
    }
}

pub async fn run(target: &Target, dimse: Option<&DimseTarget>, opts: HugeOpts) -> anyhow::Result<Vec<ScenarioReport>> {
    let layout = Arc::new(Layout::new(opts.seed, opts.kind, opts.size_mb));
    let total = layout.total();
    let name = format!(
        "huge_{}_{}",
        match opts.kind {
            Kind::Slide => "slide",
            Kind::SlideFragments => "slidefrag",
            Kind::Video => "video",
        },
        match opts.via {
            Via::Stow => "stow",
            Via::Cstore => "cstore",
        }
    );

    // Store.
    let header = Bytes::from(layout.header.clone());
    let monitor = Monitor::start(target.server_pid);
    let mut store = Tally::new(1);
    let t = Instant::now();
    let (outcome, done, dataset_only) = match opts.via {
        Via::Stow => {
            let (gen, done) = Generator::new(opts.seed, &layout, header);
            let chunks = futures::stream::once(async { Ok::<_, std::io::Error>(http::stow_opening()) })
                .chain(futures::stream::unfold(gen, |mut g| async move { g.next_chunk().map(|c| (Ok(c), g)) }))
                .chain(futures::stream::once(async { Ok(http::stow_closing()) }));
            (http::stow(&target.client, &target.base, chunks, 1, None).await, done, false)
        }
        Via::Cstore => {
            let dimse = dimse.context("C-STORE needs --dimse")?;
            let offset = dataset_offset(&header)?;
            let (gen, done) = Generator::new(opts.seed, &layout, header.slice(offset..));
            (cstore(dimse, &layout, Reader { gen, current: Bytes::new() }).await, done, true)
        }
    };
    let stored = outcome.is_ok();
    store.record(t.elapsed(), outcome.map(|()| OpOk { kind: 0, items: 1, bytes: total, verified: 1, mismatches: 0 }));
    store.elapsed = t.elapsed();
    let (server, client_cpu) = monitor.finish().await;
    let sent = done.lock().ok().and_then(|d| d.clone());
    let mut reports = vec![ScenarioReport::new(&format!("{name}_store"), "objects", 1, &store, &["store"], server)
        .client_cpu(client_cpu)
        .note("object_bytes", total)
        .note("transfer_syntax", layout.transfer_syntax)
        .note("units", layout.units)];
    if !stored {
        return Ok(reports);
    }
    let Some((sent_len, sent_sha)) = sent else { bail!("the generator never reached its end") };

    // Retrieve whole.
    let monitor = Monitor::start(target.server_pid);
    let mut retrieve = Tally::new(1);
    let t = Instant::now();
    let fetched = fetch(target, &layout.uids.path(), dataset_only).await;
    let outcome = fetched.map(|(len, sha)| {
        let same = len == sent_len && sha == sent_sha;
        OpOk { kind: 0, items: 1, bytes: len, verified: u64::from(same), mismatches: u64::from(!same) }
    });
    retrieve.record(t.elapsed(), outcome);
    retrieve.elapsed = t.elapsed();
    let (server, client_cpu) = monitor.finish().await;
    reports.push(
        ScenarioReport::new(&format!("{name}_retrieve"), "objects", 1, &retrieve, &["retrieve"], server)
            .client_cpu(client_cpu)
            .note("object_bytes", total),
    );

    // Random access: tiles, or byte ranges of the stream.
    let monitor = Monitor::start(target.server_pid);
    let (client, base, seed, layout2) =
        (target.client.clone(), format!("{}{}", target.base, layout.uids.path()), opts.seed, layout.clone());
    let tally = drive(opts.concurrency, opts.requests, 1, move |i| {
        let (client, base, layout) = (client.clone(), base.clone(), layout2.clone());
        async move {
            let mut rng = SplitMix64::derive(seed, "huge-pick", i as u64);
            if layout.sop_class == VIDEO_PHOTOGRAPHIC {
                // A seek: 256 KiB at a random offset of the stream, maybe across fragments.
                let stream_len = layout.units * layout.unit_bytes;
                let len = 256 * 1024u64;
                let start = rng.below(stream_len - len);
                let resp = client
                    .get(format!("{base}/rendered"))
                    .header("Accept", "video/mp4")
                    .header("Range", format!("bytes={start}-{}", start + len - 1))
                    .timeout(REQUEST_TIMEOUT)
                    .send()
                    .await?;
                ensure!(resp.status() == reqwest::StatusCode::PARTIAL_CONTENT, "range answered {}", resp.status());
                let got = resp.bytes().await?;
                let mut want = Vec::with_capacity(len as usize);
                let mut at = start;
                while at < start + len {
                    let unit = at / layout.unit_bytes;
                    let off = at % layout.unit_bytes;
                    let take = (layout.unit_bytes - off).min(start + len - at);
                    unit_bytes(seed, unit, layout.unit_bytes, off, &mut want, take, false);
                    at += take;
                }
                let same = got[..] == want[..];
                Ok(OpOk { kind: 0, items: 1, bytes: got.len() as u64, verified: u64::from(same), mismatches: u64::from(!same) })
            } else {
                let n = rng.below(layout.units);
                let mut got = Vec::with_capacity(layout.unit_bytes as usize);
                let parts =
                    http::get_multipart(&client, &format!("{base}/frames/{}", n + 1), FRAME_ACCEPT, Some(REQUEST_TIMEOUT), |_, c| {
                        got.extend_from_slice(c)
                    })
                    .await?;
                let mut want = Vec::with_capacity(layout.unit_bytes as usize);
                unit_bytes(seed, n, layout.unit_bytes, 0, &mut want, layout.unit_bytes, true);
                let same = parts == 1 && got == want;
                Ok(OpOk { kind: 0, items: 1, bytes: got.len() as u64, verified: u64::from(same), mismatches: u64::from(!same) })
            }
        }
    })
    .await;
    let (server, client_cpu) = monitor.finish().await;
    let (what, unit) = if layout.sop_class == VIDEO_PHOTOGRAPHIC { ("seek", "ranges") } else { ("frame", "frames") };
    reports.push(
        ScenarioReport::new(&format!("{name}_{what}s"), unit, opts.concurrency, &tally, &[what], server)
            .client_cpu(client_cpu)
            .note("verification", "every tile or range regenerated and compared byte for byte"),
    );
    Ok(reports)
}

async fn cstore(dimse: &DimseTarget, layout: &Layout, reader: Reader) -> anyhow::Result<()> {
    let contexts = [ProposedContext::new(layout.sop_class, &[layout.transfer_syntax])];
    let mut client = dimse.connect(&contexts, IO_TIMEOUT).await?;
    let rsp = client.store(layout.sop_class, &layout.uids.instance, layout.transfer_syntax, reader).await?;
    check_store(&rsp, &layout.uids.instance)?;
    client.release().await?;
    Ok(())
}

/// Retrieves the instance streaming: length and SHA-256 of the whole part, or of its data
/// set after the meta group when the object went in through C-STORE (no meta group sent).
async fn fetch(target: &Target, path: &str, dataset_only: bool) -> anyhow::Result<(u64, String)> {
    let url = format!("{}{}", target.base, path);
    let (mut whole, mut len, mut dataset) = (Sha256::new(), 0u64, DatasetHasher::default());
    let parts = http::get_multipart(&target.client, &url, INSTANCE_ACCEPT, None, |part, chunk| {
        if part == 0 {
            if dataset_only {
                dataset.update(chunk);
            } else {
                whole.update(chunk);
                len += chunk.len() as u64;
            }
        }
    })
    .await?;
    ensure!(parts == 1, "retrieve returned {parts} parts, expected 1");
    if dataset_only {
        dataset.finish()
    } else {
        Ok((len, hex(&whole.finalize())))
    }
}

use futures::StreamExt;

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(layout: &Layout, seed: u64) -> Vec<u8> {
        let (mut g, done) = Generator::new(seed, layout, Bytes::from(layout.header.clone()));
        let mut out = Vec::new();
        while let Some(c) = g.next_chunk() {
            out.extend_from_slice(&c);
        }
        assert_eq!(out.len() as u64, layout.total());
        assert!(done.lock().map(|d| d.is_some()).unwrap_or(false));
        out
    }

    #[test]
    fn slides_parse_into_the_generated_tiles() {
        for kind in [Kind::Slide, Kind::SlideFragments] {
            let layout = Layout::new(3, kind, 2); // 2 MiB: 8 tiles
            let bytes = assemble(&layout, 3);
            let obj = vna_dicom::parse::parse_bytes(&bytes, Default::default()).expect("parses");
            let vna_dicom::frames::FrameLayout::Encapsulated(frames) = vna_dicom::frames::frame_layout(&obj) else {
                panic!("{kind:?}: frames")
            };
            assert_eq!(frames.len(), 8, "{kind:?}");
            for (n, pieces) in frames.iter().enumerate() {
                let got: Vec<u8> = pieces.iter().flat_map(|e| bytes[e.offset as usize..(e.offset + e.length) as usize].to_vec()).collect();
                let mut want = Vec::new();
                unit_bytes(3, n as u64, TILE_BYTES, 0, &mut want, TILE_BYTES, true);
                assert_eq!(got, want, "{kind:?} tile {n}");
            }
        }
    }

    #[test]
    fn a_range_is_regenerated_identically() {
        let mut whole = Vec::new();
        unit_bytes(9, 2, 4 * BLOCK, 0, &mut whole, 4 * BLOCK, false);
        let mut part = Vec::new();
        unit_bytes(9, 2, 4 * BLOCK, BLOCK - 5, &mut part, BLOCK + 10, false);
        assert_eq!(&whole[(BLOCK - 5) as usize..(2 * BLOCK + 5) as usize], &part[..]);
    }
}
