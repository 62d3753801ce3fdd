//! A DIMSE toolkit above `dicom-ul` (PS3.7): command sets, status codes, message assembly from
//! P-DATA fragments, an async SCP association loop and SCU helpers. It knows associations and
//! PDUs, not the archive: the SCP front end (`vna-dimse-scp`), the load generator and the tests
//! all build on it. dicom-rs stops at the upper layer (PDUs); everything above is here.

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
mod wire;

/// The upper-layer crate this toolkit builds on, for its PDU types (rejection reasons).
pub use dicom_ul;

pub use association::{Association, Incoming, PresentationContext, Timeouts};
pub use client::{read_meta, Client, ClientOptions, FileMeta, ProposedContext};
pub use client_retrieve::{RetrieveOutcome, StoreSink};
pub use command::{Command, CommandField};
pub use error::DimseError;
pub use event_report::EventReportOutcome;
pub use handler::{AssociationInfo, DataStream, Handler, Reply, Responder, StoreRequest, SubOperations};
pub use negotiate::{is_accepted_syntax, is_storage_class, AcceptorPolicy, VERIFICATION};
pub use server::{serve, ScpConfig};
pub use status::{Status, StatusKind};
pub use suboperation::SubStoreOutcome;
