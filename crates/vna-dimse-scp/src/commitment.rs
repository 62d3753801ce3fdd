//! Storage Commitment Push Model SCP (PS3.4 Annex J): an N-ACTION-RQ asks the archive to
//! commit to a list of instances; it answers at once, then checks each against the catalog
//! and sends the result as an N-EVENT-REPORT-RQ on the same association (PS3.4 §J.3.3).
//!
//! Only instances the archive holds as a current version with the same SOP class are
//! committed; the others are reported in the Failed SOP Sequence with their Failure Reason.
//! Holding means durable and catalogued: the ingest pipeline registers an instance only after
//! its blob was committed, so there is nothing to wait for.

use crate::status::{commitment_failure_reason, failure_reason};
use std::io::Write;
use std::sync::Arc;
use vna_archive::{Archive, Principal};
use vna_dicom::dataset::{DataSet, Value};
use vna_dicom::parse::{parse_dataset_bytes, ParseError, ParseLimits};
use vna_dicom::uid::SopInstanceUid;
use vna_dicom::write::{data_set, Items};
use vna_dicom::{tags, ts, Tag, VR};
use vna_dimse::{AssociationInfo, Command, EventReportOutcome, Reply, Responder, Status};

/// Storage Commitment Push Model SOP Class (PS3.4 §J.3).
pub const STORAGE_COMMITMENT_PUSH_MODEL: &str = "1.2.840.10008.1.20.1";
/// Its well-known SOP Instance (PS3.4 §J.3.5).
pub const STORAGE_COMMITMENT_INSTANCE: &str = "1.2.840.10008.1.20.1.1";
/// Action Type ID "Request Storage Commitment" (PS3.4 Table J.3-1).
pub const ACTION_REQUEST_COMMITMENT: u16 = 1;
/// Event Type IDs of the result (PS3.4 Table J.3-2): all committed, or some failures.
pub const EVENT_ALL_SUCCESS: u16 = 1;
pub const EVENT_SOME_FAILURES: u16 = 2;

/// The Action Information is a list of references: a megabyte is thousands of them.
const REQUEST_LIMITS: ParseLimits = ParseLimits { max_header_bytes: 1 << 20, bulk_threshold: 1024, max_depth: 4 };

pub(crate) fn accepts(abstract_syntax: &str) -> bool {
    abstract_syntax == STORAGE_COMMITMENT_PUSH_MODEL
}

/// An instance the requester wants committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub sop_class: String,
    pub sop_instance: String,
}

/// A parsed N-ACTION-RQ for Storage Commitment (PS3.4 §J.3.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentRequest {
    pub transaction_uid: String,
    pub references: Vec<Reference>,
}

/// Why an N-ACTION-RQ is refused; messages carry no values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentError {
    #[error("requested SOP class is not Storage Commitment Push Model")]
    NoSuchSopClass,
    #[error("requested SOP instance is not the well-known Storage Commitment instance")]
    NoSuchInstance,
    #[error("action type is not Request Storage Commitment")]
    NoSuchAction,
    #[error("N-ACTION-RQ without Action Information")]
    NoActionInformation,
    #[error("action information: {0}")]
    Unparseable(&'static str),
    #[error("missing or empty ({:04X},{:04X})", .0.0, .0.1)]
    Missing(Tag),
    #[error("invalid value of ({:04X},{:04X})", .0.0, .0.1)]
    Invalid(Tag),
}

impl CommitmentError {
    /// The N-ACTION-RSP status (PS3.7 §10.1.4.1.10 and Annex C).
    pub fn status(&self) -> Status {
        Status(match self {
            CommitmentError::NoSuchSopClass => 0x0118,
            CommitmentError::NoSuchInstance => 0x0112,
            CommitmentError::NoSuchAction => 0x0123,
            CommitmentError::NoActionInformation | CommitmentError::Unparseable(_) => 0x0115,
            CommitmentError::Missing(_) => 0x0120,
            CommitmentError::Invalid(_) => 0x0106,
        })
    }

    fn offending(&self) -> Option<Tag> {
        match self {
            CommitmentError::Missing(t) | CommitmentError::Invalid(t) => Some(*t),
            _ => None,
        }
    }
}

/// Checks the command and parses the Action Information (PS3.4 Table J.3-1).
pub fn parse_request(command: &Command, data: Option<&[u8]>, transfer_syntax: &str) -> Result<CommitmentRequest, CommitmentError> {
    if command.requested_sop_class_uid.as_deref() != Some(STORAGE_COMMITMENT_PUSH_MODEL) {
        return Err(CommitmentError::NoSuchSopClass);
    }
    if command.requested_sop_instance_uid.as_deref() != Some(STORAGE_COMMITMENT_INSTANCE) {
        return Err(CommitmentError::NoSuchInstance);
    }
    if command.action_type_id != Some(ACTION_REQUEST_COMMITMENT) {
        return Err(CommitmentError::NoSuchAction);
    }
    let data = data.ok_or(CommitmentError::NoActionInformation)?;
    let parsed =
        parse_dataset_bytes(data, transfer_syntax, REQUEST_LIMITS).map_err(|e: ParseError| CommitmentError::Unparseable(e.kind()))?;
    let ds = parsed.dataset;
    let transaction_uid = uid(&ds, tags::TRANSACTION_UID)?;
    let Some(Value::Sequence(items)) = ds.get(tags::REFERENCED_SOP_SEQUENCE).map(|e| &e.value) else {
        return Err(CommitmentError::Missing(tags::REFERENCED_SOP_SEQUENCE));
    };
    if items.is_empty() {
        return Err(CommitmentError::Missing(tags::REFERENCED_SOP_SEQUENCE));
    }
    let references = items
        .iter()
        .map(|item| {
            Ok(Reference {
                sop_class: uid(item, tags::REFERENCED_SOP_CLASS_UID)?,
                sop_instance: uid(item, tags::REFERENCED_SOP_INSTANCE_UID)?,
            })
        })
        .collect::<Result<_, CommitmentError>>()?;
    Ok(CommitmentRequest { transaction_uid, references })
}

/// A UID value: present, non-empty, syntactically valid (PS3.5 §9.1).
fn uid(ds: &DataSet, tag: Tag) -> Result<String, CommitmentError> {
    let bytes = ds.bytes(tag).ok_or(CommitmentError::Missing(tag))?;
    let s = std::str::from_utf8(bytes).map_err(|_| CommitmentError::Invalid(tag))?.trim_end_matches(['\0', ' ']);
    if s.is_empty() {
        return Err(CommitmentError::Missing(tag));
    }
    vna_dicom::uid::validate(s).map_err(|_| CommitmentError::Invalid(tag))?;
    Ok(s.to_owned())
}

/// The Event Type ID and Event Information of the result (PS3.4 §J.3.3.1.1, Table J.3-2):
/// Referenced SOP Sequence of the committed instances (when any), Failed SOP Sequence with a
/// Failure Reason each (when any).
pub fn event_information(req: &CommitmentRequest, results: &[Result<(), u16>], retrieve_ae: Option<&str>) -> (u16, Items) {
    let item = |r: &Reference| {
        Items::new().str(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &r.sop_class).str(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            &r.sop_instance,
        )
    };
    let mut committed = Vec::new();
    let mut failed = Vec::new();
    for (r, result) in req.references.iter().zip(results) {
        match result {
            Ok(()) => committed.push(item(r)),
            Err(reason) => failed.push(item(r).u16(tags::FAILURE_REASON, *reason)),
        }
    }
    let event = if failed.is_empty() { EVENT_ALL_SUCCESS } else { EVENT_SOME_FAILURES };
    let mut items = Items::new();
    if let Some(ae) = retrieve_ae.filter(|_| !committed.is_empty()) {
        items = items.str(tags::RETRIEVE_AE_TITLE, VR::AE, ae);
    }
    items = items.str(tags::TRANSACTION_UID, VR::UI, &req.transaction_uid);
    if !failed.is_empty() {
        items = items.sequence(tags::FAILED_SOP_SEQUENCE, failed, false);
    }
    if !committed.is_empty() {
        items = items.sequence(tags::REFERENCED_SOP_SEQUENCE, committed, false);
    }
    (event, items)
}

/// Encodes a data set in the context's transfer syntax (`None` for one that cannot carry it).
fn encode(items: &Items, transfer_syntax: &str) -> Option<Vec<u8>> {
    match transfer_syntax {
        ts::IMPLICIT_VR_LITTLE_ENDIAN | ts::EXPLICIT_VR_LITTLE_ENDIAN => Some(data_set(items, transfer_syntax)),
        ts::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => {
            let plain = data_set(items, ts::EXPLICIT_VR_LITTLE_ENDIAN);
            let mut enc = flate2::write::DeflateEncoder::new(Vec::with_capacity(plain.len()), flate2::Compression::default());
            enc.write_all(&plain).and_then(|()| enc.finish()).ok()
        }
        _ => None,
    }
}

/// Whether the archive holds `r`: `Err(Failure Reason)` otherwise.
async fn check(archive: &Archive, who: &Principal, r: &Reference) -> Result<(), u16> {
    // A syntactically invalid UID cannot name anything stored here.
    let Ok(sop) = SopInstanceUid::new(&r.sop_instance) else { return Err(failure_reason::NO_SUCH_OBJECT_INSTANCE) };
    match archive.current_instance(who, &sop).await {
        Ok(Some(row)) if row.instance.sop_class_uid.as_str() == r.sop_class => Ok(()),
        Ok(Some(_)) => Err(failure_reason::CLASS_INSTANCE_CONFLICT),
        Ok(None) => Err(failure_reason::NO_SUCH_OBJECT_INSTANCE),
        Err(e) => {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "storage commitment: instance lookup failed");
            Err(commitment_failure_reason(&e))
        }
    }
}

/// N-ACTION for Storage Commitment from an AE allowed to store.
pub(crate) async fn n_action(
    archive: &Arc<Archive>,
    who: &Principal,
    info: &AssociationInfo,
    command: &Command,
    data: Option<&[u8]>,
    responder: &mut Responder<'_>,
) -> Reply {
    let transfer_syntax = responder.transfer_syntax().to_owned();
    let req = match parse_request(command, data, &transfer_syntax) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(calling_ae = %info.calling_ae, error = %e, "storage commitment refused");
            let mut reply = Reply::with_comment(e.status(), &e.to_string());
            reply.offending_elements = e.offending().map(|t| vec![(t.0, t.1)]).unwrap_or_default();
            return reply;
        }
    };
    // PS3.4 §J.3.2.1.2: the N-ACTION-RSP only says the request was received; the result
    // follows as an N-EVENT-REPORT.
    if responder.reply_now(Reply::status(Status::SUCCESS)).await.is_err() {
        return Reply::status(Status::SUCCESS);
    }
    let mut results = Vec::with_capacity(req.references.len());
    for r in &req.references {
        results.push(check(archive, who, r).await);
    }
    let retrieve_ae = (!info.called_ae.is_empty()).then_some(info.called_ae.as_str());
    let (event, items) = event_information(&req, &results, retrieve_ae);
    let Some(bytes) = encode(&items, &transfer_syntax) else {
        tracing::warn!(calling_ae = %info.calling_ae, "storage commitment: the context's transfer syntax cannot carry the result");
        return Reply::status(Status::SUCCESS);
    };
    let failed = results.iter().filter(|r| r.is_err()).count();
    match responder.event_report(STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE, event, Some(&bytes)).await {
        Ok(EventReportOutcome::Answered(status)) => {
            tracing::info!(calling_ae = %info.calling_ae, committed = results.len() - failed, failed, status = %status, "storage commitment reported");
        }
        // PS3.4 §J.3.3 lets the SCP report on a new association; that path is not built yet,
        // so the requester will time out and ask again.
        Ok(outcome) => tracing::warn!(calling_ae = %info.calling_ae, ?outcome, "storage commitment result not delivered: requester gone"),
        Err(e) => tracing::warn!(calling_ae = %info.calling_ae, error = %e, "storage commitment result not delivered"),
    }
    Reply::status(Status::SUCCESS)
}

#[cfg(test)]
#[path = "commitment_tests.rs"]
mod tests;
