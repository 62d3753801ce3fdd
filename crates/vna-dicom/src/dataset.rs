//! The parsed form of a data set: every element with its position in the stored object; small
//! values kept, large ones (bulk data, pixel data) only located.

use crate::charset::Charset;
use dicom_core::{Tag, VR};

/// A byte range of the stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// The value bytes as encoded (byte order of the data set, padding included).
    Bytes(Vec<u8>),
    /// A value too large to keep in memory: only where it is.
    Bulk,
    /// Sequence items, in order.
    Sequence(Vec<DataSet>),
    /// Encapsulated pixel data (PS3.5 §A.4): the Basic Offset Table and every fragment.
    Fragments(Fragments),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub tag: Tag,
    pub vr: VR,
    /// Where the value is in the stored object. For sequences and encapsulated pixel data,
    /// from the first byte after the element header to the end of the delimiter.
    pub extent: Extent,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fragments {
    /// Basic Offset Table value bytes (may be empty).
    pub basic_offset_table: Vec<u8>,
    /// Offset in the stored object of the item tag of the first fragment after the table;
    /// Basic and Extended Offset Table entries are relative to it.
    pub first_fragment_item: u64,
    pub items: Vec<Fragment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    /// Offset of the item tag (`FFFE,E000`) of this fragment.
    pub item_offset: u64,
    /// Its value: offset just after the 8-byte item header, and length.
    pub value: Extent,
    /// First bytes of the value (up to 8), to recognise the start of a frame (e.g. JPEG SOI).
    pub head: Vec<u8>,
}

/// An ordered list of elements (a data set or a sequence item).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataSet {
    pub elements: Vec<Element>,
}

impl DataSet {
    pub fn get(&self, tag: Tag) -> Option<&Element> {
        self.elements.iter().find(|e| e.tag == tag)
    }

    /// The kept bytes of an element, if it is present and was kept.
    pub fn bytes(&self, tag: Tag) -> Option<&[u8]> {
        match &self.get(tag)?.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A text value (all values, backslashes kept) decoded with `charset` where the VR is
    /// affected by it (PS3.5 §6.1.2.3), trailing padding removed.
    pub fn text(&self, tag: Tag, charset: &Charset) -> Option<String> {
        let el = self.get(tag)?;
        let Value::Bytes(b) = &el.value else { return None };
        Some(decode_text(el.vr, b, charset))
    }

    /// The first value of a string-valued element, trimmed, or `""` when absent or empty.
    pub fn first_text(&self, tag: Tag, charset: &Charset) -> String {
        self.text(tag, charset).and_then(|t| t.split('\\').next().map(|s| s.trim().to_owned())).unwrap_or_default()
    }

    /// An integer from an IS, US, UL, SS or SL element (first value).
    pub fn int(&self, tag: Tag, big_endian: bool) -> Option<i64> {
        let el = self.get(tag)?;
        let Value::Bytes(b) = &el.value else { return None };
        numbers(el.vr, b, big_endian).into_iter().next().and_then(|n| match n {
            Number::Int(i) => Some(i),
            Number::Float(f) if f.fract() == 0.0 => Some(f as i64),
            _ => None,
        })
    }
}

/// Decodes a text value per VR: charset-sensitive VRs with `charset`, the others as ASCII;
/// trailing padding (NUL or space) removed.
pub fn decode_text(vr: VR, bytes: &[u8], charset: &Charset) -> String {
    decode_value(vr, bytes, charset).trim_end_matches(['\0', ' ']).to_owned()
}

/// Decodes a text value per VR as [`decode_text`] does, keeping every character: what a
/// caller needs that must tell padding from a NUL inside a value.
pub fn decode_value(vr: VR, bytes: &[u8], charset: &Charset) -> String {
    match vr {
        VR::SH | VR::LO | VR::ST | VR::LT | VR::UT | VR::PN | VR::UC => charset.decode(bytes),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// A numeric value of a binary or numeric-string VR.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

/// Decodes all values of a numeric element (US, SS, UL, SL, SV, UV, FL, FD, IS, DS).
/// Unparseable numeric strings are skipped.
pub fn numbers(vr: VR, b: &[u8], big_endian: bool) -> Vec<Number> {
    fn chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        b.chunks_exact(N).filter_map(|c| c.try_into().ok())
    }
    macro_rules! bin {
        ($t:ty, $n:literal, $wrap:expr) => {
            chunks::<$n>(b).map(|c| if big_endian { <$t>::from_be_bytes(c) } else { <$t>::from_le_bytes(c) }).map($wrap).collect()
        };
    }
    match vr {
        VR::US => bin!(u16, 2, |v| Number::Int(v as i64)),
        VR::SS => bin!(i16, 2, |v| Number::Int(v as i64)),
        VR::UL => bin!(u32, 4, |v| Number::Int(v as i64)),
        VR::SL => bin!(i32, 4, |v| Number::Int(v as i64)),
        VR::SV => bin!(i64, 8, Number::Int),
        VR::UV => bin!(u64, 8, |v| Number::Int(v as i64)),
        VR::FL => bin!(f32, 4, |v| Number::Float(v as f64)),
        VR::FD => bin!(f64, 8, Number::Float),
        VR::IS | VR::DS => String::from_utf8_lossy(b)
            .split('\\')
            .map(|s| s.trim_matches(['\0', ' ']))
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                if vr == VR::IS {
                    s.parse::<i64>().ok().map(Number::Int)
                } else {
                    s.parse::<f64>().ok().filter(|f| f.is_finite()).map(Number::Float)
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}
