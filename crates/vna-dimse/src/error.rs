//! Errors of the DIMSE toolkit: one variant per step that failed.

use crate::command::CommandError;
use dicom_ul::pdu::AssociationRJ;

#[derive(Debug, thiserror::Error)]
pub enum DimseError {
    #[error("connecting to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the TLS handshake failed")]
    Tls(#[source] std::io::Error),
    #[error("reading a PDU from the peer")]
    ReadPdu(#[source] std::io::Error),
    #[error("writing a PDU to the peer")]
    WritePdu(#[source] std::io::Error),
    #[error("the peer sent a malformed PDU")]
    DecodePdu(#[source] dicom_ul::pdu::ReadError),
    #[error("encoding a PDU")]
    EncodePdu(#[source] dicom_ul::pdu::WriteError),
    #[error("the peer sent a {length}-byte PDU, over the negotiated maximum of {max}")]
    PduTooLarge { length: u32, max: u32 },
    #[error("timed out while {step}")]
    Timeout { step: &'static str },
    #[error("the peer closed the connection")]
    Closed,
    #[error("the peer aborted the association")]
    Aborted,
    #[error("the association was released while {step}")]
    Released { step: &'static str },
    #[error("unexpected {what} (PS3.8 state machine)")]
    UnexpectedPdu { what: &'static str },
    #[error("malformed command set")]
    Command(#[source] CommandError),
    #[error("a command set is larger than {limit} bytes")]
    CommandTooLarge { limit: usize },
    #[error("a data set is larger than {limit} bytes where a small one was expected")]
    DataSetTooLarge { limit: usize },
    #[error("P-DATA value for presentation context {id}, which was not accepted")]
    UnknownPresentationContext { id: u8 },
    #[error("the association was rejected: {0:?}")]
    Rejected(AssociationRJ),
    #[error("no accepted presentation context for abstract syntax {abstract_syntax} with transfer syntax {transfer_syntax}")]
    NoPresentationContext { abstract_syntax: String, transfer_syntax: String },
    #[error("the peer answered with {got:04X}, expected a response to {expected:04X}")]
    UnexpectedResponse { expected: u16, got: u16 },
    #[error("reading the file to send")]
    ReadFile(#[source] std::io::Error),
    #[error("the file to send is not a DICOM Part 10 file: {why}")]
    NotPart10 { why: &'static str },
    #[error("the association is in an unknown state after {step}")]
    Broken { step: &'static str },
    #[error("the handler failed: {0}")]
    Handler(String),
}
