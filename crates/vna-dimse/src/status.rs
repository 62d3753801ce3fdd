//! DIMSE status codes (PS3.7 §9.1.1.1.9 and Annex C; PS3.4 Annex B for C-STORE, Annex C for
//! query/retrieve) as named constants on a `Status` newtype: unknown codes stay representable.

use std::fmt;

/// The Status (0000,0900) of a DIMSE response.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

/// The category of a status (PS3.7 Annex C.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Success,
    Warning,
    Failure,
    Cancel,
    Pending,
}

impl Status {
    /// PS3.7 Annex C, success status class.
    pub const SUCCESS: Status = Status(0x0000);
    /// PS3.7 Annex C, cancel status class: the operation was cancelled (C-CANCEL).
    pub const CANCEL: Status = Status(0xFE00);
    /// PS3.4 §C.4.1.1.4 Table C.4-1: matches are continuing.
    pub const PENDING: Status = Status(0xFF00);
    /// PS3.4 §C.4.1.1.4: matches continuing, optional keys not supported.
    pub const PENDING_WARNING: Status = Status(0xFF01);

    /// PS3.7 Annex C, failure "Processing failure": general failure in processing the operation.
    pub const PROCESSING_FAILURE: Status = Status(0x0110);
    /// PS3.7 Annex C, failure "Refused: SOP Class not supported".
    pub const SOP_CLASS_NOT_SUPPORTED: Status = Status(0x0122);
    /// PS3.7 Annex C, failure "Refused: Not Authorized".
    pub const NOT_AUTHORIZED: Status = Status(0x0124);
    /// PS3.7 Annex C, failure "Duplicate invocation" (Message ID already in use).
    pub const DUPLICATE_INVOCATION: Status = Status(0x0210);
    /// PS3.7 Annex C, failure "Unrecognized operation": the command is not supported here.
    pub const UNRECOGNIZED_OPERATION: Status = Status(0x0211);
    /// PS3.7 Annex C, failure "Mistyped argument".
    pub const MISTYPED_ARGUMENT: Status = Status(0x0212);

    /// PS3.4 Table B.2-1: refused, out of resources (A7xx).
    pub const OUT_OF_RESOURCES: Status = Status(0xA700);
    /// PS3.4 Table C.4-2/C.4-3: refused, out of resources, unable to calculate the number of matches.
    pub const OUT_OF_RESOURCES_MATCHES: Status = Status(0xA701);
    /// PS3.4 Table C.4-2/C.4-3: refused, out of resources, unable to perform sub-operations.
    pub const OUT_OF_RESOURCES_SUBOPERATIONS: Status = Status(0xA702);
    /// PS3.4 Table C.4-2: refused, move destination unknown.
    pub const MOVE_DESTINATION_UNKNOWN: Status = Status(0xA801);
    /// PS3.4 Table B.2-1: error, data set does not match SOP class (A9xx).
    pub const DATA_SET_DOES_NOT_MATCH_SOP_CLASS: Status = Status(0xA900);
    /// PS3.4 Table C.4-1: identifier does not match SOP class.
    pub const IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS: Status = Status(0xA900);
    /// PS3.4 Table B.2-1: error, cannot understand (Cxxx).
    pub const CANNOT_UNDERSTAND: Status = Status(0xC000);
    /// PS3.4 Table B.2-1: warning, coercion of data elements.
    pub const COERCION_OF_DATA_ELEMENTS: Status = Status(0xB000);
    /// PS3.4 Table B.2-1: warning, data set does not match SOP class.
    pub const WARNING_DATA_SET_DOES_NOT_MATCH: Status = Status(0xB007);
    /// PS3.4 Table B.2-1: warning, elements discarded.
    pub const ELEMENTS_DISCARDED: Status = Status(0xB006);
    /// PS3.4 Table C.4-2/C.4-3: sub-operations complete, one or more failures or warnings.
    pub const SUBOPERATIONS_WITH_FAILURES: Status = Status(0xB000);

    pub fn kind(self) -> StatusKind {
        match self.0 {
            0x0000 => StatusKind::Success,
            0xFE00 => StatusKind::Cancel,
            0xFF00 | 0xFF01 => StatusKind::Pending,
            0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => StatusKind::Warning,
            _ => StatusKind::Failure,
        }
    }

    pub fn is_success(self) -> bool {
        self.kind() == StatusKind::Success
    }

    pub fn is_pending(self) -> bool {
        self.kind() == StatusKind::Pending
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Status(0x{:04X})", self.0)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(Status::SUCCESS.kind(), StatusKind::Success);
        assert_eq!(Status::PENDING.kind(), StatusKind::Pending);
        assert_eq!(Status::COERCION_OF_DATA_ELEMENTS.kind(), StatusKind::Warning);
        assert_eq!(Status::OUT_OF_RESOURCES.kind(), StatusKind::Failure);
        assert_eq!(Status(0xA7FF).kind(), StatusKind::Failure);
        assert_eq!(Status::CANNOT_UNDERSTAND.kind(), StatusKind::Failure);
        assert_eq!(Status::CANCEL.kind(), StatusKind::Cancel);
    }
}
