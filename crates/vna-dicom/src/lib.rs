//! DICOM encoding for the archive (PS3.5, PS3.10, PS3.18 Annex F).
//!
//! - [`uid`]: validated UID newtypes; nothing else in the archive builds one from a raw string.
//! - [`pn`]: person-name folding for fuzzy matching.

pub mod pn;
pub mod uid;
