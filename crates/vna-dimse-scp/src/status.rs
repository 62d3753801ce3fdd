//! Archive errors as DIMSE statuses: the DIMSE renderings of `ErrorClass` (one
//! error-class table, rendered by each protocol), one table per service, checked against
//! PS3.4 Table B.2-1 (C-STORE), Table C.4-1 (C-FIND), §J.3.3.1.1 (Storage Commitment
//! Failure Reason) and PS3.7 Annex C.

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
/// | InvalidInput (SOP class/instance differ from the command's or the meta group's) | 0xA900 | Error: data set does not match SOP class |
/// | InvalidInput (other) | 0xC000 | Error: cannot understand |
/// | Conflict | 0xC001 | Cxxx family, see `VERSION_CONFLICT` |
/// | TooLarge, Busy, Timeout | 0xA700 | Refused: out of resources (retry later or elsewhere) |
/// | Unsupported | 0x0122 | Refused: SOP class not supported |
/// | Forbidden | 0x0124 | Refused: not authorized (PS3.7 Annex C; the tenant of the object) |
/// | NotFound, Internal | 0x0110 | Processing failure |
pub fn store_failure(error: &ArchiveError) -> Reply {
    let status = match error.class() {
        ErrorClass::InvalidInput if error.is_identity_mismatch() => Status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS,
        ErrorClass::InvalidInput => Status::CANNOT_UNDERSTAND,
        ErrorClass::Conflict => VERSION_CONFLICT,
        ErrorClass::TooLarge | ErrorClass::Busy | ErrorClass::Timeout => Status::OUT_OF_RESOURCES,
        ErrorClass::Unsupported => Status::SOP_CLASS_NOT_SUPPORTED,
        ErrorClass::Forbidden => Status::NOT_AUTHORIZED,
        ErrorClass::NotFound | ErrorClass::Internal => return Reply::with_comment(Status::PROCESSING_FAILURE, "internal error"),
    };
    Reply::with_comment(status, &error.kind())
}

/// Failed: Unable to process (PS3.4 Table C.4-1, the Cxxx family of C-FIND).
pub const UNABLE_TO_PROCESS: Status = Status(0xC000);

/// The final response of a C-FIND whose query failed in the archive.
///
/// | class | status | PS3.4 Table C.4-1 |
/// | --- | --- | --- |
/// | TooLarge, Busy, Timeout | 0xA700 | Refused: Out of resources (retry later) |
/// | InvalidInput, Unsupported, Conflict | 0xC000 | Failed: Unable to process (with the reason) |
/// | Forbidden | 0x0124 | Refused: Not authorized (PS3.7 Annex C) |
/// | NotFound, Internal | 0xC000 | Failed: Unable to process ("internal error") |
pub fn query_failure(error: &ArchiveError) -> Reply {
    match error.class() {
        ErrorClass::TooLarge | ErrorClass::Busy | ErrorClass::Timeout => Reply::with_comment(Status::OUT_OF_RESOURCES, &error.kind()),
        ErrorClass::Forbidden => Reply::with_comment(Status::NOT_AUTHORIZED, &error.kind()),
        ErrorClass::InvalidInput | ErrorClass::Unsupported | ErrorClass::Conflict => Reply::with_comment(UNABLE_TO_PROCESS, &error.kind()),
        ErrorClass::NotFound | ErrorClass::Internal => Reply::with_comment(UNABLE_TO_PROCESS, "internal error"),
    }
}

/// The final response of a C-MOVE/C-GET whose query for the instances failed in the archive.
///
/// | class | status | PS3.4 Table C.4-2 / C.4-3 |
/// | --- | --- | --- |
/// | TooLarge, Busy, Timeout | 0xA701 | Refused: Out of resources – unable to calculate number of matches |
/// | InvalidInput, Unsupported, Conflict | 0xC000 | Failed: Unable to process (with the reason) |
/// | Forbidden | 0x0124 | Refused: Not authorized (PS3.7 Annex C) |
/// | NotFound, Internal | 0xC000 | Failed: Unable to process ("internal error") |
pub fn retrieve_failure(error: &ArchiveError) -> Reply {
    match error.class() {
        ErrorClass::TooLarge | ErrorClass::Busy | ErrorClass::Timeout => {
            Reply::with_comment(Status::OUT_OF_RESOURCES_MATCHES, &error.kind())
        }
        ErrorClass::Forbidden => Reply::with_comment(Status::NOT_AUTHORIZED, &error.kind()),
        ErrorClass::InvalidInput | ErrorClass::Unsupported | ErrorClass::Conflict => Reply::with_comment(UNABLE_TO_PROCESS, &error.kind()),
        ErrorClass::NotFound | ErrorClass::Internal => Reply::with_comment(UNABLE_TO_PROCESS, "internal error"),
    }
}

/// Failure Reason (0008,1197) of a Storage Commitment result (PS3.4 §J.3.3.1.1; the values are
/// defined with the attribute in PS3.3 §C.14.1.1).
pub mod failure_reason {
    /// A general failure in processing the operation.
    pub const PROCESSING_FAILURE: u16 = 0x0110;
    /// The SCP does not know the instance.
    pub const NO_SUCH_OBJECT_INSTANCE: u16 = 0x0112;
    /// The SCP could not process the request for lack of resources.
    pub const RESOURCE_LIMITATION: u16 = 0x0213;
    /// The SOP class given for the instance is not the one it was stored with.
    pub const CLASS_INSTANCE_CONFLICT: u16 = 0x0119;
}

/// The Failure Reason of an instance whose commitment could not be checked because the
/// archive failed (looking it up).
///
/// | class | Failure Reason |
/// | --- | --- |
/// | TooLarge, Busy, Timeout | 0x0213 Resource limitation |
/// | any other | 0x0110 Processing failure |
pub fn commitment_failure_reason(error: &ArchiveError) -> u16 {
    match error.class() {
        ErrorClass::TooLarge | ErrorClass::Busy | ErrorClass::Timeout => failure_reason::RESOURCE_LIMITATION,
        ErrorClass::InvalidInput
        | ErrorClass::Unsupported
        | ErrorClass::Conflict
        | ErrorClass::NotFound
        | ErrorClass::Forbidden
        | ErrorClass::Internal => failure_reason::PROCESSING_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vna_archive::SopRef;
    use vna_dicom::uid::{SopClassUid, SopInstanceUid};

    fn sop() -> SopRef {
        SopRef {
            class: SopClassUid::new("1.2.840.10008.5.1.4.1.1.2").unwrap_or_else(|_| unreachable!()),
            instance: SopInstanceUid::new("1.2.3").unwrap_or_else(|_| unreachable!()),
        }
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

    fn catalog_error(transient: bool) -> ArchiveError {
        let source = if transient { sqlx_error(true) } else { sqlx_error(false) };
        ArchiveError::Catalog { step: "searching studies", source }
    }

    fn sqlx_error(transient: bool) -> vna_catalog::CatalogError {
        if transient {
            vna_catalog::CatalogError::Connect(sqlx::Error::PoolTimedOut)
        } else {
            vna_catalog::CatalogError::Corrupt { what: "study date" }
        }
    }

    #[test]
    fn query_statuses() {
        let busy = query_failure(&catalog_error(true));
        assert_eq!(busy.status, Status(0xA700));
        assert_eq!(query_failure(&ArchiveError::Busy).status, Status(0xA700));
        let internal = query_failure(&catalog_error(false));
        assert_eq!(internal.status, Status(0xC000));
        assert_eq!(internal.error_comment.as_deref(), Some("internal error"));
        let invalid = query_failure(&ArchiveError::MissingAttribute { attribute: "StudyDate" });
        assert_eq!(invalid.status, Status(0xC000));
        assert!(invalid.error_comment.is_some_and(|c| c.contains("StudyDate") && c.chars().count() <= 64));
        // Every failure is a failure, never a warning or success (PS3.7 Annex C.1).
        for e in [catalog_error(true), catalog_error(false), ArchiveError::NotFound { what: "study" }] {
            assert_eq!(query_failure(&e).status.kind(), vna_dimse::StatusKind::Failure);
        }
    }

    #[test]
    fn commitment_failure_reasons() {
        assert_eq!(commitment_failure_reason(&catalog_error(true)), 0x0213);
        assert_eq!(commitment_failure_reason(&catalog_error(false)), 0x0110);
        assert_eq!(commitment_failure_reason(&ArchiveError::Busy), 0x0213);
    }
}
