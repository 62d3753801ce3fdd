//! DICOM encoding for the archive (PS3.5, PS3.10, PS3.18 Annex F).
//!
//! - [`uid`]: validated UID newtypes; nothing else in the archive builds one from a raw string.
//! - [`parse`]: a push-based Part 10 parser fed as bytes arrive; keeps small values and the
//!   positions of bulk data and pixel fragments.
//! - [`frames`]: the byte ranges of every frame, from the parse.
//! - [`json`]: DICOM JSON of a parsed data set.
//! - [`recode`]: streamed re-encoding between the uncompressed transfer syntaxes.
//! - [`validate`]: the checks every ingest path runs on a parsed object.
//! - [`write`](mod@write): a small Part 10 writer for objects the archive makes itself.
//! - [`pn`], [`charset`]: person-name folding and Specific Character Set decoding.
//!
//! # How it is built
//!
//! `recode` re-encodes a stored object between the uncompressed syntaxes as it streams out
//! (values byte for byte, sequences delimited, dictionary VRs resolved by context); `validate` is
//! the one check every ingest path runs after parsing (meta group against data set, known
//! transfer syntaxes, Pixel Data as long as declared); the parser itself refuses cut values
//! (naming what they declare), values that cannot fit their item, and binary values of broken
//! length.
//!
//! DICOM encoding, no I/O. `parse::StreamParser` is a push-based Part 10 parser: `feed(&[u8])` as
//! bytes arrive, `finish()` at the end. It keeps element headers and small values and records the
//! position (`Extent`) of bulk values and of every pixel-data fragment; it never holds pixel data.
//! `StreamParser::for_dataset` parses a bare data set (DIMSE: no preamble, no meta group) in a
//! given transfer syntax. It handles explicit/implicit VR little endian, explicit big endian,
//! deflate (inflating on the fly; positions then refer to the inflated stream, so frames and bulk
//! data are not addressable), nested sequences of defined and undefined length, and UN of undefined length (PS3.5 §6.2.2).
//! Limits (`ParseLimits`) bound what a hostile object can make it keep. `frames::frame_layout`
//! turns a parse into frame byte ranges: native (arithmetic), encapsulated with Extended Offset
//! Table, Basic Offset Table, one fragment per frame, or a scan of fragment starts for codestream
//! markers. `json` writes DICOM JSON (PS3.18 Annex F) with internal `vna-bulk:{offset}-{length}`
//! BulkDataURIs that the front end resolves per request. `uid` has the validated UID newtypes;
//! `pn` the folding behind fuzzy name matching; `charset` Specific Character Set decoding; `write`
//! a small Part 10 writer (synthetic objects for tests and the load generator; element and item
//! headers for objects streamed around a large value); `uid::generate` makes `2.25` UIDs from a
//! random UUID. For video syntaxes (MPEG-2, H.264, HEVC, their fragmentable variants) the frame
//! layout is one entry, the whole stream: all fragments in order. `encapsulate` turns a
//! non-DICOM file into an object: `media` reads what it needs from the file's own structure (a
//! JPEG's SOF, a PDF's signature, an MP4's video track — codec, profile/level, size, frame count,
//! duration — through a caller's `Read + Seek`, seeking over `mdat`), `Attributes` validates the
//! caller's keyword/value metadata against an allowlist and the VRs (errors name the keyword,
//! never the value), and `build` returns the object as `Segment`s (our bytes interleaved with
//! ranges of the file) so that a multi-GB video is streamed, never held; past 4 GiB a video is cut
//! into 1 GiB fragments under the fragmentable syntax. Why our own MP4 reader: six fields are
//! needed, read without loading the sample tables of a long recording.
//!
//! Why our own parser and not dicom-parser: dicom-rs reads from a blocking `Read` and loads values
//! (pixel data included) into memory, and does not report fragment positions. We use dicom-rs for
//! what it is good at: `dicom-core` types (`Tag`, `VR`) and the `dicom-dictionary-std` dictionary.

pub mod charset;
pub mod dataset;
pub mod encapsulate;
pub mod frames;
pub mod json;
pub mod parse;
pub mod pn;
pub mod recode;
pub mod transcode;
pub mod ts;
pub mod uid;
pub mod validate;
pub mod write;

pub use dicom_core::{Tag, VR};

/// Tags the archive reads by name. Kept here so that every crate uses the same constants.
pub mod tags {
    pub use dicom_dictionary_std::tags::*;
}

/// Resolves a QIDO `includefield` / matching key: a keyword (`PatientName`) or 8 hex digits
/// (`00100010`). Returns `None` for anything else.
pub fn tag_from_key(key: &str) -> Option<Tag> {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    if key.len() == 8 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        let g = u16::from_str_radix(&key[..4], 16).ok()?;
        let e = u16::from_str_radix(&key[4..], 16).ok()?;
        return Some(Tag(g, e));
    }
    dicom_dictionary_std::StandardDataDictionary.by_name(key).map(|e| e.tag())
}
