//! Why a C-FIND request is refused, as a C-FIND failure status (PS3.4 §C.4.1.1.4, Table
//! C.4-1; PS3.7 Annex C) with an Error Comment and Offending Element that never carry values.

use vna_dicom::parse::ParseError;
use vna_dicom::Tag;

/// Refused: SOP Class not supported (PS3.7 Annex C, a general status).
pub const STATUS_SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
/// Failed: Identifier does not match SOP Class (PS3.4 Table C.4-1).
pub const STATUS_IDENTIFIER_DOES_NOT_MATCH: u16 = 0xA900;
/// Failed: Unable to process (PS3.4 Table C.4-1, Cxxx).
pub const STATUS_UNABLE_TO_PROCESS: u16 = 0xC000;

/// One variant per reason. Messages name attributes, never their values (values are PHI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    #[error("not a supported C-FIND information model")]
    UnsupportedModel,
    #[error("identifier cannot be parsed")]
    Unparseable(#[source] ParseError),
    #[error("no Query/Retrieve Level (0008,0052)")]
    MissingLevel,
    #[error("Query/Retrieve Level (0008,0052) is not a known level")]
    UnknownLevel,
    #[error("{level} level is not in the {model} model")]
    LevelNotInModel { model: &'static str, level: &'static str },
    #[error("missing unique key ({:04X},{:04X}) of a higher level", .tag.0, .tag.1)]
    MissingUniqueKey { tag: Tag },
    #[error("unique key ({:04X},{:04X}) must be a single value", .tag.0, .tag.1)]
    UniqueKeyNotSingle { tag: Tag },
    #[error("invalid value of key ({:04X},{:04X})", .tag.0, .tag.1)]
    InvalidValue { tag: Tag },
}

impl FindError {
    /// The C-FIND response status.
    pub fn status(&self) -> u16 {
        match self {
            FindError::UnsupportedModel => STATUS_SOP_CLASS_NOT_SUPPORTED,
            FindError::Unparseable(_) => STATUS_UNABLE_TO_PROCESS,
            FindError::MissingLevel
            | FindError::UnknownLevel
            | FindError::LevelNotInModel { .. }
            | FindError::MissingUniqueKey { .. }
            | FindError::UniqueKeyNotSingle { .. }
            | FindError::InvalidValue { .. } => STATUS_IDENTIFIER_DOES_NOT_MATCH,
        }
    }

    /// Error Comment (0000,0902): LO, at most 64 characters (every message fits), no values
    /// from the request.
    pub fn error_comment(&self) -> String {
        let s = match self {
            FindError::Unparseable(e) => format!("identifier: {}", e.kind()),
            other => other.to_string(),
        };
        s.chars().take(64).collect()
    }

    /// Offending Element (0000,0901), when one attribute is to blame.
    pub fn offending_element(&self) -> Option<Tag> {
        match self {
            FindError::MissingLevel | FindError::UnknownLevel | FindError::LevelNotInModel { .. } => {
                Some(vna_dicom::tags::QUERY_RETRIEVE_LEVEL)
            }
            FindError::MissingUniqueKey { tag } | FindError::UniqueKeyNotSingle { tag } | FindError::InvalidValue { tag } => Some(*tag),
            FindError::UnsupportedModel | FindError::Unparseable(_) => None,
        }
    }
}
