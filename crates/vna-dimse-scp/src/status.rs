//! Archive errors as C-STORE statuses: the one DIMSE rendering of `ErrorClass` (STYLE.md
//! "one error-class table, rendered by each protocol"), checked against PS3.4 Table B.2-1 and
//! PS3.7 Annex C.

use vna_archive::{ArchiveError, ErrorClass};
use vna_dimse::{Reply, Status};

/// Refused: an instance with this SOP Instance UID and other content exists and the version
/// policy is `reject`. PS3.4 Annex B has no status for this; we use a code of the Cxxx family
/// ("Error: cannot understand", which PS3.4 Table B.2-1 leaves open to implementations) so
/// that SCUs treat it as a permanent failure, with the reason in the Error Comment.
pub const VERSION_CONFLICT: Status = Status(0xC001);

/// The failure response of a C-STORE whose store failed. The Error Comment is the error's
/// description, which never holds PHI or internals; internal errors only say so (their chain
/// was logged once by the archive).
///
/// | class | status | PS3.4 Table B.2-1 / PS3.7 Annex C |
/// | --- | --- | --- |
/// | InvalidInput (SOP class/instance mismatch) | 0xA900 | Error: data set does not match SOP class |
/// | InvalidInput (other) | 0xC000 | Error: cannot understand |
/// | Conflict | 0xC001 | Cxxx family, see [`VERSION_CONFLICT`] |
/// | TooLarge, Busy, Timeout | 0xA700 | Refused: out of resources (retry later or elsewhere) |
/// | Unsupported | 0x0122 | Refused: SOP class not supported |
/// | NotFound, Internal | 0x0110 | Processing failure |
pub fn store_failure(error: &ArchiveError) -> Reply {
    let status = match error.class() {
        ErrorClass::InvalidInput if matches!(error, ArchiveError::SopMismatch { .. }) => Status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
        ErrorClass::InvalidInput => Status::CANNOT_UNDERSTAND,
        ErrorClass::Conflict => VERSION_CONFLICT,
        ErrorClass::TooLarge | ErrorClass::Busy | ErrorClass::Timeout => Status::OUT_OF_RESOURCES,
        ErrorClass::Unsupported => Status::SOP_CLASS_NOT_SUPPORTED,
        ErrorClass::NotFound | ErrorClass::Internal => return Reply::with_comment(Status::PROCESSING_FAILURE, "internal error"),
    };
    Reply::with_comment(status, &error.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vna_archive::SopRef;
    use vna_dicom::uid::{SopClassUid, SopInstanceUid};

    fn sop() -> SopRef {
        SopRef { class: SopClassUid::new("1.2.840.10008.5.1.4.1.1.2").unwrap_or_else(|_| unreachable!()), instance: SopInstanceUid::new("1.2.3").unwrap_or_else(|_| unreachable!()) }
    }

    #[test]
    fn statuses() {
        assert_eq!(store_failure(&ArchiveError::SopMismatch { expected: sop() }).status, Status(0xA900));
        assert_eq!(store_failure(&ArchiveError::MissingAttribute { attribute: "SOPInstanceUID" }).status, Status(0xC000));
        assert_eq!(store_failure(&ArchiveError::Busy).status, Status(0xA700));
        assert_eq!(store_failure(&ArchiveError::TooLarge { limit: 10 }).status, Status(0xA700));
        assert_eq!(store_failure(&ArchiveError::VersionConflict { sop: sop() }).status, Status(0xC001));
        let internal = store_failure(&ArchiveError::Task { step: "x" });
        assert_eq!(internal.status, Status(0x0110));
        assert_eq!(internal.error_comment.as_deref(), Some("internal error"));
        let long = store_failure(&ArchiveError::VersionConflict { sop: sop() });
        assert!(long.error_comment.is_some_and(|c| c.chars().count() <= 64));
    }
}
