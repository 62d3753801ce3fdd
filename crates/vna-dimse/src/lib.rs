//! A DIMSE toolkit above `dicom-ul` (PS3.7): command sets, status codes, message assembly from
//! P-DATA fragments, an async SCP association loop and SCU helpers. It knows associations and
//! PDUs, not the archive: the SCP front end (`vna-dimse-scp`), the load generator and the tests
//! all build on it. dicom-rs stops at the upper layer (PDUs); everything above is here.
//!
//! # How it is built
//!
//! The DIMSE toolkit (PS3.7, PS3.8 above the PDU codec). Ours because dicom-rs stops at the upper
//! layer: `dicom-ul` reads and writes PDUs, there is no DIMSE layer above it. We use `dicom-ul`
//! for the PDU types and codec only (`dicom_ul::pdu::{read_pdu, write_pdu}`), not its
//! `ServerAssociationOptions`: that acceptor matches abstract syntaxes against an exact list (or
//! everything) and accepts only transfer syntaxes dicom-rs can decode, and the cap rejection needs
//! the raw A-ASSOCIATE-RQ anyway. `command` is the command set codec (group 0000, implicit VR LE)
//! and the typed `Command`/`CommandField`; `status` the `Status` constants (PS3.4 Annex B/C, PS3.7
//! Annex C); `wire` PDU framing on a tokio socket; `negotiate` the acceptor's decision (called AE,
//! known calling AEs, application context, presentation contexts: every storage SOP class
//! `1.2.840.10008.5.1.4.1.1.*` plus the few outside that branch, `vna_dicom::ts::KNOWN` (the archive's one list) taken in the
//! requestor's order, store as received); `association` an established association (a reader task
//! feeding a 2-PDU channel; `receive_command` buffers a command, `receive_data` hands out data set
//! fragments as they arrive, `send_*` split to the peer's maximum PDU length, `poll_cancel` for
//! C-CANCEL); `handler` the `Handler` trait an SCP implements (`c_store` gets a `DataStream`;
//! `c_find`/`c_move`/`c_get`/`n_action` default to 0x0211 and get a `Responder` for pending
//! responses; `event_report.rs` adds `Responder::reply_now`, the final response sent early, and
//! `Responder::event_report`, an N-EVENT-REPORT-RQ on the request's context awaiting its RSP, for
//! what follows an N-ACTION on the same association); `suboperation.rs` adds
//! `Association::send_streamed` (a C-STORE-RQ with its data set read from any `AsyncRead`, the
//! first fragment read before the command goes out so an unreadable source costs nothing) and
//! `Responder::store_context`/`Responder::store`, the C-STORE sub-operations of a C-GET on the
//! request's association: only on contexts whose class the requester took the SCP role for, the
//! C-STORE-RSP awaited while a C-CANCEL-RQ for the C-GET is noted for `Responder::cancelled`; a
//! sub-operation that breaks off mid-message sets `Responder::broken` and the loop aborts the
//! association. `negotiate` answers SCP/SCU Role Selection (PS3.7 §D.3.3.4) for storage classes
//! with an accepted context by accepting the proposed roles (`requestor_scp_classes` records
//! them on the `Association`); other classes keep the default roles. `server::serve` the accept
//! loop; `client::Client` the SCU (`connect`, `connect_with_roles` proposing the SCP role for
//! storage classes, `echo`, `store`/`store_file` streamed, `find`, `move_`/`move_with` and
//! `get`/`get_with` with pending counts, a C-CANCEL-RQ when the `keep_going` callback says so, C-GET
//! sub-operations into a `StoreSink`, `store_suboperation` with Move Originator, `release`,
//! `abort`; the retrieve half in `client_retrieve.rs`).

pub mod association;
pub mod client;
mod client_retrieve;
pub mod command;
pub mod error;
mod event_report;
pub mod handler;
pub mod negotiate;
mod quickack;
pub mod server;
pub mod status;
mod suboperation;
pub mod transport;
mod wire;

/// The upper-layer crate this toolkit builds on, for its PDU types (rejection reasons).
pub use dicom_ul;

pub use association::{Association, Incoming, PresentationContext, Timeouts};
pub use client::{read_meta, Client, ClientOptions, FileMeta, ProposedContext};
pub use client_retrieve::{RetrieveOutcome, StoreSink};
pub use command::{Command, CommandField};
pub use error::DimseError;
pub use event_report::EventReportOutcome;
pub use handler::{
    AssociationInfo, Authentication, DataStream, Handler, Reply, Responder, Session, StoreReply, StoreRequest, SubOperations, UserIdentity,
};
pub use negotiate::{is_accepted_syntax, is_storage_class, AcceptorPolicy, MAX_OPERATIONS_PERFORMED, VERIFICATION};
pub use server::{serve, ScpConfig};
pub use status::{Status, StatusKind};
pub use suboperation::SubStoreOutcome;
pub use transport::{ClientTls, Connection, ServerTls, TlsPeer};
