//! A small DICOM Part 10 writer (PS3.10 §7.1, PS3.5 §7) for objects the archive makes itself:
//! synthetic, PHI-free test and benchmark objects now, encapsulated non-DICOM documents later.
//! Writes explicit or implicit VR little endian; elements are kept sorted by tag.

use crate::ts;
use dicom_core::{Tag, VR};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
enum WValue {
    Bytes(Vec<u8>),
    /// Items, and whether to write undefined lengths with delimiters.
    Items(Vec<Items>, bool),
    /// Encapsulated pixel data: offset table entries (if any) and fragments.
    Fragments {
        table: Vec<u32>,
        fragments: Vec<Vec<u8>>,
    },
}

/// An ordered set of elements to write (a data set or a sequence item).
#[derive(Debug, Clone, Default)]
pub struct Items {
    elements: BTreeMap<Tag, (VR, WValue)>,
}

impl Items {
    pub fn new() -> Self {
        Self::default()
    }

    /// A string-valued element; padded to even length as PS3.5 §6.2 requires.
    pub fn str(mut self, tag: Tag, vr: VR, value: &str) -> Self {
        let mut b = value.as_bytes().to_vec();
        if b.len() % 2 == 1 {
            b.push(if vr == VR::UI { 0 } else { b' ' });
        }
        self.elements.insert(tag, (vr, WValue::Bytes(b)));
        self
    }

    /// Raw value bytes (already even-length and little endian).
    pub fn bytes(mut self, tag: Tag, vr: VR, value: Vec<u8>) -> Self {
        self.elements.insert(tag, (vr, WValue::Bytes(value)));
        self
    }

    pub fn u16(self, tag: Tag, value: u16) -> Self {
        self.bytes(tag, VR::US, value.to_le_bytes().to_vec())
    }

    pub fn sequence(mut self, tag: Tag, items: Vec<Items>, undefined_length: bool) -> Self {
        self.elements.insert(tag, (VR::SQ, WValue::Items(items, undefined_length)));
        self
    }

    /// Native pixel data (OW for 16-bit, OB otherwise is the caller's choice of `vr`).
    pub fn native_pixels(self, vr: VR, data: Vec<u8>) -> Self {
        self.bytes(Tag(0x7FE0, 0x0010), vr, data)
    }

    /// Encapsulated pixel data, one fragment per frame unless `fragments_per_frame` splits
    /// each frame; with `basic_offset_table` the table is filled, else left empty.
    pub fn encapsulated_pixels(mut self, frames: &[Vec<u8>], fragments_per_frame: usize, basic_offset_table: bool) -> Self {
        let mut table = Vec::new();
        let mut fragments = Vec::new();
        let mut offset = 0u32;
        for frame in frames {
            table.push(offset);
            let n = fragments_per_frame.max(1);
            let size = frame.len().div_ceil(n).max(1);
            for piece in frame.chunks(size) {
                let mut p = piece.to_vec();
                if p.len() % 2 == 1 {
                    p.push(0);
                }
                offset += 8 + p.len() as u32;
                fragments.push(p);
            }
        }
        if !basic_offset_table {
            table.clear();
        }
        self.elements.insert(Tag(0x7FE0, 0x0010), (VR::OB, WValue::Fragments { table, fragments }));
        self
    }

    /// Splits into the elements before `tag` and those after it (`tag` itself is dropped):
    /// for objects whose one large value the caller streams between the two.
    pub fn split_around(mut self, tag: Tag) -> (Items, Items) {
        let mut after = self.elements.split_off(&tag);
        after.remove(&tag);
        (self, Items { elements: after })
    }

    fn write(&self, out: &mut Vec<u8>, explicit: bool) {
        for (tag, (vr, value)) in &self.elements {
            write_element(out, *tag, *vr, value, explicit);
        }
    }
}

fn put_tag(out: &mut Vec<u8>, tag: Tag) {
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
}

fn put_header(out: &mut Vec<u8>, tag: Tag, vr: VR, len: u32, explicit: bool) {
    put_tag(out, tag);
    if !explicit {
        out.extend_from_slice(&len.to_le_bytes());
        return;
    }
    out.extend_from_slice(vr.to_string().as_bytes());
    if matches!(vr, VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::SQ | VR::UC | VR::UN | VR::UR | VR::UT | VR::SV | VR::UV) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&len.to_le_bytes());
    } else {
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
}

fn write_element(out: &mut Vec<u8>, tag: Tag, vr: VR, value: &WValue, explicit: bool) {
    match value {
        WValue::Bytes(b) => {
            put_header(out, tag, vr, b.len() as u32, explicit);
            out.extend_from_slice(b);
        }
        WValue::Items(items, undefined) => {
            let mut body = Vec::new();
            for item in items {
                let mut inner = Vec::new();
                item.write(&mut inner, explicit);
                put_tag(&mut body, Tag(0xFFFE, 0xE000));
                if *undefined {
                    body.extend_from_slice(&u32::MAX.to_le_bytes());
                    body.extend_from_slice(&inner);
                    put_tag(&mut body, Tag(0xFFFE, 0xE00D));
                    body.extend_from_slice(&0u32.to_le_bytes());
                } else {
                    body.extend_from_slice(&(inner.len() as u32).to_le_bytes());
                    body.extend_from_slice(&inner);
                }
            }
            if *undefined {
                put_header(out, tag, vr, u32::MAX, explicit);
                out.extend_from_slice(&body);
                put_tag(out, Tag(0xFFFE, 0xE0DD));
                out.extend_from_slice(&0u32.to_le_bytes());
            } else {
                put_header(out, tag, vr, body.len() as u32, explicit);
                out.extend_from_slice(&body);
            }
        }
        WValue::Fragments { table, fragments } => {
            put_header(out, tag, vr, u32::MAX, explicit);
            put_tag(out, Tag(0xFFFE, 0xE000));
            out.extend_from_slice(&((table.len() * 4) as u32).to_le_bytes());
            for t in table {
                out.extend_from_slice(&t.to_le_bytes());
            }
            for f in fragments {
                put_tag(out, Tag(0xFFFE, 0xE000));
                out.extend_from_slice(&(f.len() as u32).to_le_bytes());
                out.extend_from_slice(f);
            }
            put_tag(out, Tag(0xFFFE, 0xE0DD));
            out.extend_from_slice(&0u32.to_le_bytes());
        }
    }
}

/// Our implementation class UID and version name, written in every meta group we make.
pub const IMPLEMENTATION_CLASS_UID: &str = "1.2.826.0.1.3680043.10.1480.1";
pub const IMPLEMENTATION_VERSION_NAME: &str = "VNA";

/// The 128-byte preamble, `DICM` and the file meta group (PS3.10 §7.1) of an object whose data
/// set follows in `transfer_syntax`: what a DIMSE front end puts before a received data set to
/// make it a Part 10 object.
pub fn file_meta(sop_class: &str, sop_instance: &str, transfer_syntax: &str) -> Vec<u8> {
    let meta = Items::new()
        .bytes(Tag(0x0002, 0x0001), VR::OB, vec![0, 1])
        .str(Tag(0x0002, 0x0002), VR::UI, sop_class)
        .str(Tag(0x0002, 0x0003), VR::UI, sop_instance)
        .str(Tag(0x0002, 0x0010), VR::UI, transfer_syntax)
        .str(Tag(0x0002, 0x0012), VR::UI, IMPLEMENTATION_CLASS_UID)
        .str(Tag(0x0002, 0x0013), VR::SH, IMPLEMENTATION_VERSION_NAME);
    let mut meta_bytes = Vec::new();
    meta.write(&mut meta_bytes, true);
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    put_header(&mut out, Tag(0x0002, 0x0000), VR::UL, 4, true);
    out.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta_bytes);
    out
}

/// Writes a Part 10 object: preamble, `DICM`, file meta group, then `dataset` in
/// `transfer_syntax` (implicit VR LE when it is 1.2.840.10008.1.2, explicit VR LE otherwise).
/// SOP Class and Instance UIDs for the meta group are taken from the data set.
pub fn part10(dataset: &Items, transfer_syntax: &str) -> Vec<u8> {
    let uid_of = |tag: Tag| match dataset.elements.get(&tag) {
        Some((_, WValue::Bytes(b))) => String::from_utf8_lossy(b).trim_end_matches('\0').to_owned(),
        _ => String::new(),
    };
    let mut out = file_meta(&uid_of(Tag(0x0008, 0x0016)), &uid_of(Tag(0x0008, 0x0018)), transfer_syntax);
    dataset.write(&mut out, transfer_syntax != ts::IMPLICIT_VR_LITTLE_ENDIAN);
    out
}

/// Writes `dataset` alone (no preamble, no meta group), as a DIMSE peer sends it.
pub fn data_set(dataset: &Items, transfer_syntax: &str) -> Vec<u8> {
    let mut out = Vec::new();
    dataset.write(&mut out, transfer_syntax != ts::IMPLICIT_VR_LITTLE_ENDIAN);
    out
}

/// An explicit VR little endian element header (PS3.5 §7.1.2); `u32::MAX` is the undefined
/// length of encapsulated pixel data.
pub fn element_header(tag: Tag, vr: VR, length: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    put_header(&mut out, tag, vr, length, true);
    out
}

/// An item header (FFFE,E000) of the given length, e.g. of a pixel data fragment (PS3.5 §A.4).
pub fn item_header(length: u32) -> [u8; 8] {
    let mut h = [0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0];
    h[4..].copy_from_slice(&length.to_le_bytes());
    h
}

/// The sequence delimitation item (FFFE,E0DD) closing encapsulated pixel data.
pub const SEQUENCE_DELIMITER: [u8; 8] = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];

/// The element header of native Pixel Data (7FE0,0010) OW with a defined length, explicit VR
/// little endian (PS3.5 §7.1.2): its value follows directly. For synthetic objects too large to
/// build in memory, whose pixels the caller streams after it.
pub fn native_pixel_data_header(length: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(&[0xE0, 0x7F, 0x10, 0x00]);
    h[4..6].copy_from_slice(b"OW");
    h[8..].copy_from_slice(&length.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part10_is_file_meta_then_data_set() {
        let ds = Items::new()
            .str(Tag(0x0008, 0x0016), VR::UI, "1.2.840.10008.5.1.4.1.1.7")
            .str(Tag(0x0008, 0x0018), VR::UI, "1.2.3.4")
            .str(Tag(0x0010, 0x0020), VR::LO, "X");
        let whole = part10(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN);
        let meta = file_meta("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4", ts::EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(&whole[..meta.len()], &meta[..]);
        assert_eq!(&whole[meta.len()..], &data_set(&ds, ts::EXPLICIT_VR_LITTLE_ENDIAN)[..]);
        // The group length covers exactly the rest of the meta group.
        let group_length = u32::from_le_bytes([meta[140], meta[141], meta[142], meta[143]]) as usize;
        assert_eq!(meta.len(), 144 + group_length);
        // Odd-length UIDs are padded with NUL (PS3.5 §9.1).
        assert_eq!(meta.len() % 2, 0);
    }
}
