//! Where each frame of an image lies in the stored object, so that WADO-RS `/frames/{n}` is one
//! ranged read (PS3.5 §8.2 native, §A.4 encapsulated with Basic and Extended Offset Tables).

use crate::dataset::{Extent, Fragments, Value};
use crate::parse::{ParsedObject, EXTENDED_OFFSET_TABLE, EXTENDED_OFFSET_TABLE_LENGTHS, PIXEL_DATA};
use crate::ts;
use dicom_core::Tag;

const ROWS: Tag = Tag(0x0028, 0x0010);
const COLUMNS: Tag = Tag(0x0028, 0x0011);
const SAMPLES_PER_PIXEL: Tag = Tag(0x0028, 0x0002);
const BITS_ALLOCATED: Tag = Tag(0x0028, 0x0100);
const NUMBER_OF_FRAMES: Tag = Tag(0x0028, 0x0008);
const PHOTOMETRIC_INTERPRETATION: Tag = Tag(0x0028, 0x0004);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameLayout {
    /// No pixel data, or frames that cannot be addressed one by one (deflate, packed bits that
    /// do not align on bytes, pixel data shorter than its attributes say).
    None,
    Native {
        first_offset: u64,
        frame_length: u64,
        count: u32,
    },
    /// The byte ranges (fragment values) making up each frame, in order. For a video syntax
    /// (MPEG-2, H.264, HEVC: PS3.5 §8.2.5–8.2.8) there is one entry, the whole stream: all
    /// fragments in order, since frames cannot be cut out of it; WADO-RS serves it as the
    /// video's single "frame" and as the rendered video with Range support.
    Encapsulated(Vec<Vec<Extent>>),
}

/// Computes the frame layout of a parsed object.
pub fn frame_layout(obj: &ParsedObject) -> FrameLayout {
    if !obj.positions_are_stored_offsets {
        return FrameLayout::None;
    }
    let ds = &obj.dataset;
    let Some(pixel) = ds.get(PIXEL_DATA) else { return FrameLayout::None };
    if ts::is_video(&obj.transfer_syntax) {
        return match &pixel.value {
            Value::Fragments(f) if !f.items.is_empty() => FrameLayout::Encapsulated(vec![f.items.iter().map(|i| i.value).collect()]),
            _ => FrameLayout::None,
        };
    }
    let frames = ds.text(NUMBER_OF_FRAMES, &Default::default()).and_then(|s| s.trim().parse::<u32>().ok()).filter(|n| *n > 0).unwrap_or(1);
    match &pixel.value {
        Value::Bulk | Value::Bytes(_) => {
            let be = obj.big_endian;
            let (Some(rows), Some(cols)) = (ds.int(ROWS, be), ds.int(COLUMNS, be)) else {
                return FrameLayout::None;
            };
            let samples = ds.int(SAMPLES_PER_PIXEL, be).unwrap_or(1);
            let bits = ds.int(BITS_ALLOCATED, be).unwrap_or(8);
            let mut frame_bits = rows * cols * samples * bits;
            let photometric = ds.first_text(PHOTOMETRIC_INTERPRETATION, &Default::default());
            if photometric == "YBR_FULL_422" || photometric == "YBR_PARTIAL_422" {
                frame_bits = frame_bits * 2 / 3;
            }
            if frame_bits <= 0 || frame_bits % 8 != 0 {
                return FrameLayout::None;
            }
            let frame_length = (frame_bits / 8) as u64;
            if frame_length * frames as u64 > pixel.extent.length {
                return FrameLayout::None;
            }
            FrameLayout::Native { first_offset: pixel.extent.offset, frame_length, count: frames }
        }
        Value::Fragments(f) => encapsulated(obj, f, frames),
        Value::Sequence(_) => FrameLayout::None,
    }
}

fn encapsulated(obj: &ParsedObject, f: &Fragments, frames: u32) -> FrameLayout {
    let items = &f.items;
    if items.is_empty() {
        return FrameLayout::None;
    }
    let piece = |i: usize| items[i].value;
    // Extended Offset Table (PS3.3 §C.7.6.3.1.8): 64-bit offsets of each frame's first item.
    if let (Some(eot), Some(lengths)) = (obj.dataset.bytes(EXTENDED_OFFSET_TABLE), obj.dataset.bytes(EXTENDED_OFFSET_TABLE_LENGTHS)) {
        let starts = u64s(eot, obj.big_endian);
        let lens = u64s(lengths, obj.big_endian);
        if starts.len() == frames as usize && lens.len() == starts.len() {
            if let Some(layout) = by_offsets(f, &starts) {
                return layout;
            }
        }
    }
    if frames == 1 {
        return FrameLayout::Encapsulated(vec![(0..items.len()).map(piece).collect()]);
    }
    // Basic Offset Table: 32-bit offsets, relative to the first fragment's item tag.
    let bot = &f.basic_offset_table;
    if !bot.is_empty() {
        let starts: Vec<u64> = bot
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok())
            .map(|c: [u8; 4]| if obj.big_endian { u32::from_be_bytes(c) } else { u32::from_le_bytes(c) } as u64)
            .collect();
        if starts.len() == frames as usize {
            if let Some(layout) = by_offsets(f, &starts) {
                return layout;
            }
        }
    }
    if items.len() == frames as usize {
        return FrameLayout::Encapsulated((0..items.len()).map(|i| vec![piece(i)]).collect());
    }
    // No usable table and more fragments than frames: a frame starts at each fragment that
    // begins with a codestream start marker (JPEG/JPEG-LS SOI, JPEG 2000 SOC, JP2 signature).
    let starts: Vec<usize> = (0..items.len()).filter(|&i| starts_frame(&items[i].head)).collect();
    if starts.len() == frames as usize && starts.first() == Some(&0) {
        let mut out = Vec::with_capacity(starts.len());
        for (k, &s) in starts.iter().enumerate() {
            let e = starts.get(k + 1).copied().unwrap_or(items.len());
            out.push((s..e).map(piece).collect());
        }
        return FrameLayout::Encapsulated(out);
    }
    FrameLayout::None
}

fn by_offsets(f: &Fragments, starts: &[u64]) -> Option<FrameLayout> {
    let rel = |i: usize| f.items[i].item_offset - f.first_fragment_item;
    let mut out = Vec::with_capacity(starts.len());
    let mut i = 0;
    for (k, &start) in starts.iter().enumerate() {
        while i < f.items.len() && rel(i) < start {
            i += 1;
        }
        if i >= f.items.len() || rel(i) != start {
            return None;
        }
        let end = starts.get(k + 1).copied().unwrap_or(u64::MAX);
        let mut pieces = Vec::new();
        while i < f.items.len() && rel(i) < end {
            pieces.push(f.items[i].value);
            i += 1;
        }
        out.push(pieces);
    }
    Some(FrameLayout::Encapsulated(out))
}

fn u64s(b: &[u8], big_endian: bool) -> Vec<u64> {
    b.chunks_exact(8)
        .filter_map(|c| c.try_into().ok())
        .map(|c: [u8; 8]| if big_endian { u64::from_be_bytes(c) } else { u64::from_le_bytes(c) })
        .collect()
}

fn starts_frame(head: &[u8]) -> bool {
    head.starts_with(&[0xFF, 0xD8]) || head.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) || head.starts_with(&[0, 0, 0, 0x0C, 0x6A, 0x50])
}
