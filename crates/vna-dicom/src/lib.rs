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
