//! The parser's public vocabulary: limits, errors, the parsed object, and the VR rules
//! (PS3.5 §7.1) shared by the Part 10 and bare data set entry points.

use crate::dataset::DataSet;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

/// Bounds on what the parser keeps, so a hostile or broken object cannot exhaust memory.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Total bytes of kept values (the "header": everything but bulk data). Default 64 MiB.
    pub max_header_bytes: usize,
    /// Binary values (OB, OW, OF, OD, OL, OV, UN) longer than this are bulk data: located,
    /// not kept. Default 1024.
    pub bulk_threshold: u32,
    /// Deepest sequence nesting accepted. Default 32.
    pub max_depth: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits { max_header_bytes: 64 << 20, bulk_threshold: 1024, max_depth: 32 }
    }
}

/// Why a byte stream is not an acceptable DICOM object. Messages name the position, never a
/// value (values may be PHI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a DICOM Part 10 object: no 'DICM' prefix after the 128-byte preamble")]
    NotPart10,
    #[error("the file meta information has no Transfer Syntax UID (0002,0010)")]
    NoTransferSyntax,
    #[error("the object ends before its data set is complete (truncated at byte {at})")]
    Truncated { at: u64 },
    #[error(
        "element ({group:04X},{element:04X}) at byte {at} declares {declared} bytes, and the object ends {missing} bytes short of them"
    )]
    ValueCut { group: u16, element: u16, at: u64, declared: u64, missing: u64 },
    #[error(
        "element ({group:04X},{element:04X}) at byte {at} has VR {vr} and a value length of {length}, not a multiple of the value size"
    )]
    BadLength { group: u16, element: u16, vr: &'static str, length: u32, at: u64 },
    #[error("invalid value representation bytes at byte {at}")]
    BadVr { at: u64 },
    #[error("element ({group:04X},{element:04X}) at byte {at} has an undefined length but is not a sequence or pixel data")]
    UndefinedLength { group: u16, element: u16, at: u64 },
    #[error("unexpected item or delimiter tag ({group:04X},{element:04X}) at byte {at}")]
    UnexpectedDelimiter { group: u16, element: u16, at: u64 },
    #[error("an element at byte {at} runs past the end of its enclosing item or sequence")]
    Overrun { at: u64 },
    #[error("sequences are nested deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("the data set header exceeds the {max}-byte limit on kept values")]
    HeaderTooLarge { max: usize },
    #[error("the deflated data set cannot be inflated")]
    Deflate,
}

impl ParseError {
    /// The kind of problem without positions, for grouping many rejections (import summary).
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::NotPart10 => "not a DICOM Part 10 object",
            ParseError::NoTransferSyntax => "no Transfer Syntax UID in the file meta information",
            ParseError::Truncated { .. } | ParseError::ValueCut { .. } => "truncated object",
            ParseError::BadLength { .. } => "value length not a multiple of its VR's value size",
            ParseError::BadVr { .. } => "invalid value representation",
            ParseError::UndefinedLength { .. } => "undefined length on an element that cannot have one",
            ParseError::UnexpectedDelimiter { .. } => "misplaced item or delimiter",
            ParseError::Overrun { .. } => "element overruns its item or sequence",
            ParseError::TooDeep { .. } => "sequences nested too deep",
            ParseError::HeaderTooLarge { .. } => "header larger than the limit",
            ParseError::Deflate => "deflated data set cannot be inflated",
        }
    }
}

/// What the parser learned from a complete object.
#[derive(Debug, Clone)]
pub struct ParsedObject {
    /// File meta information (group 0002); empty for a bare data set.
    pub meta: DataSet,
    /// The data set, with bulk values located but not kept.
    pub dataset: DataSet,
    pub transfer_syntax: String,
    pub big_endian: bool,
    /// False for deflated objects: positions refer to the inflated stream, not stored bytes.
    pub positions_are_stored_offsets: bool,
    /// Total bytes fed.
    pub size: u64,
}

/// PS3.5 §7.1.2: these VRs have a 2-byte reserved field and a 4-byte length.
pub(crate) fn has_long_length(vr: VR) -> bool {
    matches!(vr, VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::SQ | VR::UC | VR::UN | VR::UR | VR::UT | VR::SV | VR::UV)
}

/// True when the dictionary gives `tag` one VR, not a choice (US or SS, OB or OW): only then
/// can a value length be checked against the VR in implicit VR encoding.
pub(crate) fn implicit_vr_is_exact(tag: Tag) -> bool {
    tag.1 != 0x0000 && tag.0.is_multiple_of(2) && StandardDataDictionary.by_tag(tag).is_some_and(|e| e.vr().exact().is_some())
}

/// The VR of an element in implicit VR encoding, from the standard dictionary.
pub fn implicit_vr(tag: Tag) -> VR {
    if tag.1 == 0x0000 {
        return VR::UL; // group length
    }
    if tag.0 % 2 == 1 {
        return if tag.1 <= 0x00FF && tag.1 >= 0x0010 { VR::LO } else { VR::UN };
    }
    match StandardDataDictionary.by_tag(tag) {
        Some(entry) => entry.vr().relaxed(),
        None => VR::UN,
    }
}
