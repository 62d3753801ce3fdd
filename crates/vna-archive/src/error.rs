//! Archive errors and the one error-class table every front end renders.

use vna_blob::BlobError;
use vna_catalog::CatalogError;
use vna_dicom::parse::ParseError;
use vna_dicom::uid::{SopClassUid, SopInstanceUid, UidError};

/// What kind of failure an error is, independent of protocol. Each front end has exactly one
/// `match` turning this into its status (HTTP status, DIMSE status, STOW FailureReason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request or object is malformed or violates the standard.
    InvalidInput,
    NotFound,
    /// The request conflicts with what is stored (version policy, study mismatch).
    Conflict,
    /// Well-formed but not something this archive does (yet).
    Unsupported,
    TooLarge,
    /// Over a capacity limit or a dependency is temporarily unavailable: retry later.
    Busy,
    Timeout,
    /// The caller is known and lacks the permission or the tenant the operation needs. (Who
    /// the caller is, is settled by the front end before the archive is asked.)
    Forbidden,
    Internal,
}

/// One variant per step that failed. Display strings are safe to show a client: no PHI, no
/// internals (paths, SQL); sources go to the log.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a valid DICOM object: {0}")]
    NotDicom(#[source] ParseError),
    /// Readable, and still not acceptable (`vna_dicom::validate`).
    #[error("not a valid DICOM object: {0}")]
    Invalid(#[source] vna_dicom::validate::Defect),
    #[error("required attribute {attribute} is missing or empty")]
    MissingAttribute { attribute: &'static str },
    #[error("attribute {attribute} is not a valid UID: {source}")]
    InvalidUid {
        attribute: &'static str,
        #[source]
        source: UidError,
    },
    #[error("the instance belongs to another study than the one in the request")]
    StudyMismatch { sop: SopRef },
    #[error("the SOP Class or Instance UID of the data set differs from the one in the request")]
    SopMismatch { expected: SopRef },
    #[error("the object is larger than the {limit}-byte limit")]
    TooLarge { limit: u64 },
    #[error("the request selects more than {limit} objects; narrow it")]
    TooManyObjects { limit: u64 },
    #[error("too many stores in progress; retry later")]
    Busy,
    #[error("the request body ended before the object was complete")]
    BodyAborted,
    #[error("an instance with this SOP Instance UID and different content exists, and the version policy rejects it")]
    VersionConflict { sop: SopRef },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("frame {number} does not exist (the instance has {count} frames)")]
    FrameOutOfRange { number: u32, count: u32 },
    #[error("a video instance's pixel data is one stream: frame 1 (or /rendered, for playback with Range)")]
    VideoFrame,
    #[error("the frames of this instance cannot be retrieved one by one ({why})")]
    FramesUnavailable { why: &'static str },
    #[error("bulk data range is outside the instance")]
    BulkOutOfRange,
    #[error("storage failed while {step}")]
    Blob {
        step: &'static str,
        #[source]
        source: BlobError,
    },
    #[error("the catalog failed while {step}")]
    Catalog {
        step: &'static str,
        #[source]
        source: CatalogError,
    },
    /// A non-DICOM file or its metadata could not be encapsulated.
    #[error("{0}")]
    Encapsulate(#[source] vna_dicom::encapsulate::EncapsulateError),
    #[error("the study belongs to another patient than the one the metadata names")]
    PatientMismatch,
    /// Decoding or rendering an image (names the codec's complaint or the unsupported
    /// transfer syntax, never a value).
    #[error("{0}")]
    Image(#[source] vna_image::ImageError),
    /// PS3.18 §8.7.3.5.2, PS3.4 §C.4.2.1.4: the instance cannot be sent in the requested
    /// transfer syntax (no decoder for the stored one, or an encoding this archive does not make).
    #[error("the instance is stored as {stored} and cannot be delivered as {requested}")]
    SyntaxUnavailable { stored: String, requested: String },
    #[error("not permitted: the operation needs the {needed} permission for this data")]
    Forbidden { needed: crate::Permission },
    /// The object's study is recorded in another tenant than the rules give this object.
    #[error("the study belongs to another tenant than the one this object is assigned to")]
    TenantConflict,
    /// The lifecycle plan an administrator applies no longer holds (the catalog or the policies
    /// changed since it was made); nothing was queued.
    #[error("the lifecycle plan changed since it was made: its hash is now {current}")]
    PlanChanged { current: String },
    /// A selection (a legal hold's query) that cannot be run: names the key and what is wrong
    /// with the value's form, never the value.
    #[error("{why}")]
    BadQuery { why: String },
    /// A report names its study by an accession number that more than one study has.
    #[error("the accession number names more than one study: give StudyInstanceUID")]
    AmbiguousStudy,
    #[error("internal task failed while {step}")]
    Task { step: &'static str },
}

/// The SOP class and instance an error is about, when the object was readable that far; for
/// protocol responses that must name the refused instance (STOW FailedSOPSequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SopRef {
    pub class: SopClassUid,
    pub instance: SopInstanceUid,
}

impl ArchiveError {
    /// True when the object is not the instance it claims or was sent as (PS3.4 Table B.2-1
    /// 0xA900 "data set does not match SOP class", PS3.18 Table I.2-2 the same code): its SOP
    /// UIDs differ from the command's, the file meta group's, or its study from the request's.
    pub fn is_identity_mismatch(&self) -> bool {
        match self {
            ArchiveError::SopMismatch { .. } | ArchiveError::StudyMismatch { .. } => true,
            ArchiveError::Invalid(d) => d.is_identity_mismatch(),
            _ => false,
        }
    }

    pub fn sop(&self) -> Option<&SopRef> {
        match self {
            ArchiveError::StudyMismatch { sop } | ArchiveError::VersionConflict { sop } | ArchiveError::SopMismatch { expected: sop } => {
                Some(sop)
            }
            _ => None,
        }
    }

    /// A short description without positions or counts, for grouping many failures.
    pub fn kind(&self) -> String {
        match self {
            ArchiveError::NotDicom(p) => format!("not a valid DICOM object: {}", p.kind()),
            ArchiveError::Invalid(vna_dicom::validate::Defect::PixelDataTooShort { .. }) => "pixel data shorter than declared".to_owned(),
            ArchiveError::FrameOutOfRange { .. } => "frame out of range".to_owned(),
            other => other.to_string(),
        }
    }

    pub fn class(&self) -> ErrorClass {
        use ArchiveError::*;
        match self {
            NotDicom(ParseError::HeaderTooLarge { .. }) => ErrorClass::TooLarge,
            NotDicom(_)
            | Invalid(_)
            | MissingAttribute { .. }
            | InvalidUid { .. }
            | SopMismatch { .. }
            | BodyAborted
            | FrameOutOfRange { .. }
            | VideoFrame
            | BulkOutOfRange
            | BadQuery { .. } => ErrorClass::InvalidInput,
            StudyMismatch { .. } | VersionConflict { .. } | PatientMismatch | TenantConflict | PlanChanged { .. } | AmbiguousStudy => {
                ErrorClass::Conflict
            }
            Forbidden { .. } => ErrorClass::Forbidden,
            Encapsulate(vna_dicom::encapsulate::EncapsulateError::TooLarge(_)) => ErrorClass::TooLarge,
            Encapsulate(vna_dicom::encapsulate::EncapsulateError::Media(vna_dicom::encapsulate::MediaError::Unsupported(_))) => {
                ErrorClass::Unsupported
            }
            Encapsulate(vna_dicom::encapsulate::EncapsulateError::Media(vna_dicom::encapsulate::MediaError::Io)) => ErrorClass::Internal,
            Encapsulate(_) => ErrorClass::InvalidInput,
            TooLarge { .. } | TooManyObjects { .. } => ErrorClass::TooLarge,
            Busy => ErrorClass::Busy,
            NotFound { .. } => ErrorClass::NotFound,
            FramesUnavailable { .. } | SyntaxUnavailable { .. } => ErrorClass::Unsupported,
            Blob { source: BlobError::NotFound { .. }, .. } => ErrorClass::NotFound,
            Blob { source: BlobError::Locked { .. }, .. } => ErrorClass::Conflict,
            Blob { source: BlobError::Unsupported { .. }, .. } => ErrorClass::Unsupported,
            Blob { source, .. } if source.is_transient() => ErrorClass::Busy,
            Catalog { source, .. } if source.is_transient() => ErrorClass::Busy,
            Catalog { source: CatalogError::FrameOutOfRange { .. }, .. } => ErrorClass::InvalidInput,
            Image(vna_image::ImageError::Unsupported(_) | vna_image::ImageError::NotAnImage(_)) => ErrorClass::Unsupported,
            Image(vna_image::ImageError::InvalidRequest(_)) => ErrorClass::InvalidInput,
            Blob { .. } | Catalog { .. } | Task { .. } | Image(_) => ErrorClass::Internal,
        }
    }

    pub(crate) fn blob(step: &'static str) -> impl FnOnce(BlobError) -> ArchiveError {
        move |source| ArchiveError::Blob { step, source }
    }

    pub(crate) fn catalog(step: &'static str) -> impl FnOnce(CatalogError) -> ArchiveError {
        move |source| match source {
            CatalogError::FrameOutOfRange { number, count } => ArchiveError::FrameOutOfRange { number, count },
            source => ArchiveError::Catalog { step, source },
        }
    }
}
