//! C-FIND (PS3.4 §C.4.1): identifiers into the catalog's query model, result rows into
//! response identifiers. Pure functions, no I/O: the association loop parses the request with
//! [`parse_request`], runs `FindRequest::query` on the catalog at `FindRequest::level`, and
//! sends one Pending response per row built by [`response_identifier`]; a [`FindError`] gives
//! the failure status, Error Comment and Offending Element.
//!
//! What is matched and returned:
//! - Keys at the query level and above are matched (PS3.4 §C.2.2.2 matching types); keys
//!   below the query level, keys the catalog does not hold and sequences are treated as
//!   universal and returned zero-length, as PS3.4 §C.2.2.1 and §C.4.1.1.3.2 have an SCP do
//!   for keys it does not support.
//! - Hierarchical search (PS3.4 §C.4.1.3.1) requires the unique key of every level above the
//!   query level, with a single value; relational queries (when negotiated, §C.5.1) lift this.
//!
//! # How it is built
//!
//! C-FIND as pure functions, no I/O, wired in by the association loop. `find::parse_request`
//! turns an identifier (a bare data set, parsed with `vna_dicom::parse::parse_dataset_bytes` in
//! the context's transfer syntax) into a `FindRequest`: the level checked against the model
//! (Patient Root / Study Root), the unique keys of the levels above required unless relational
//! queries were negotiated, each key a `vna_catalog::Filter` with its matching type, the
//! requested keys kept for the response. `find::response_identifier` turns a catalog row into the
//! Pending response identifier: exactly the requested keys (plus Query/Retrieve Level, Specific
//! Character Set `ISO_IR 192`, Retrieve AE Title), keys the archive cannot answer zero-length.
//! `FindError` gives the failure status (A900, C000, 0122), an Error Comment without values and
//! the Offending Element. Not supported: sequence matching (universal), combined date-time
//! matching, timezone adjustment.

mod error;
mod keys;
mod request;
mod response;

#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod response_tests;
#[cfg(test)]
mod test_support;

pub use error::FindError;
pub use request::{parse_request, request_from_dataset};
pub use response::{response_identifier, response_items, FindRow, ResponseEncoding};

use vna_archive::query::Query;
use vna_dicom::{Tag, VR};

/// Patient Root Query/Retrieve Information Model – FIND (PS3.4 §C.6.1).
pub const PATIENT_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.1.1";
/// Study Root Query/Retrieve Information Model – FIND (PS3.4 §C.6.2).
pub const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";

/// The Query/Retrieve Information Model of the presentation context (PS3.4 §C.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InformationModel {
    /// Levels PATIENT, STUDY, SERIES, IMAGE.
    PatientRoot,
    /// Levels STUDY (patient attributes included), SERIES, IMAGE.
    StudyRoot,
}

impl InformationModel {
    pub fn from_sop_class(uid: &str) -> Option<Self> {
        match uid.trim_end_matches(['\0', ' ']) {
            PATIENT_ROOT_FIND => Some(InformationModel::PatientRoot),
            STUDY_ROOT_FIND => Some(InformationModel::StudyRoot),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            InformationModel::PatientRoot => "Patient Root",
            InformationModel::StudyRoot => "Study Root",
        }
    }

    /// The levels of the model, top first.
    pub fn levels(self) -> &'static [QueryLevel] {
        match self {
            InformationModel::PatientRoot => &[QueryLevel::Patient, QueryLevel::Study, QueryLevel::Series, QueryLevel::Image],
            InformationModel::StudyRoot => &[QueryLevel::Study, QueryLevel::Series, QueryLevel::Image],
        }
    }
}

/// Query/Retrieve Level (0008,0052), PS3.4 §C.6.1.1.1. Ordered top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueryLevel {
    Patient,
    Study,
    Series,
    Image,
}

impl QueryLevel {
    /// The Code String of the level as it appears in (0008,0052).
    pub fn code(self) -> &'static str {
        match self {
            QueryLevel::Patient => "PATIENT",
            QueryLevel::Study => "STUDY",
            QueryLevel::Series => "SERIES",
            QueryLevel::Image => "IMAGE",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim_matches(['\0', ' ']) {
            "PATIENT" => Some(QueryLevel::Patient),
            "STUDY" => Some(QueryLevel::Study),
            "SERIES" => Some(QueryLevel::Series),
            "IMAGE" => Some(QueryLevel::Image),
            _ => None,
        }
    }

    pub fn catalog_level(self) -> vna_archive::query::Level {
        match self {
            QueryLevel::Patient => vna_archive::query::Level::Patient,
            QueryLevel::Study => vna_archive::query::Level::Study,
            QueryLevel::Series => vna_archive::query::Level::Series,
            QueryLevel::Image => vna_archive::query::Level::Instance,
        }
    }
}

/// What was negotiated for the presentation context (PS3.4 §C.5.1.1, C-FIND extended
/// negotiation; both false when the SCU sent no extended negotiation), and the archive's
/// bound on lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindOptions {
    /// Fuzzy semantic matching of person names (PS3.4 §C.2.2.2.1): PN keys match case- and
    /// accent-insensitively by word prefix (`vna_dicom::pn`) instead of exactly.
    pub fuzzy: bool,
    /// Relational queries (PS3.4 §C.4.1.3.2): unique keys of the levels above are not
    /// required.
    pub relational: bool,
    /// Most values of a UID or code list (the archive's `max_list_items`).
    pub max_list: usize,
}

impl Default for FindOptions {
    fn default() -> Self {
        FindOptions { fuzzy: false, relational: false, max_list: 1000 }
    }
}

/// An attribute of the request identifier that the response carries back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedKey {
    pub tag: Tag,
    /// The VR the response uses: the standard's for keys we know, else the request's.
    pub vr: VR,
}

/// A parsed C-FIND request, ready for the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindRequest {
    pub model: InformationModel,
    pub level: QueryLevel,
    /// The catalog query: `query.level` is `level.catalog_level()`, no limit.
    pub query: Query,
    /// Every attribute to return, in tag order, except Query/Retrieve Level, Specific
    /// Character Set and Retrieve AE Title, which every response carries anyway. Private
    /// attributes and group lengths are dropped.
    pub requested: Vec<RequestedKey>,
    /// Requested keys the archive cannot answer at this level (returned zero-length), for the
    /// conformance log; a subset of `requested`.
    pub unsupported: Vec<Tag>,
}
