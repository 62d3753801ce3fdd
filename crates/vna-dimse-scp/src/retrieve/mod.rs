//! C-MOVE and C-GET SCP (PS3.4 §C.4.2, §C.4.3): the identifier resolved to the current
//! instances it designates, each sent as a C-STORE sub-operation streamed from the blob store
//! (to the Move Destination on a sub-association, or back on the C-GET's own association), a
//! Pending response with the counts after each, C-CANCEL honoured between sub-operations, and
//! the final status with the Failed SOP Instance UID List.
//!
//! Objects go out as stored wherever the peer accepted a context with the stored transfer
//! syntax; only otherwise re-encoded or decoded to a fallback it accepted (`proposal` for what
//! a C-MOVE proposes, `c_get` for what a C-GET picks among the requester's contexts). An
//! instance the peer accepts no deliverable syntax for fails.

mod c_get;
mod c_move;
mod proposal;
mod source;
#[cfg(test)]
mod tests;

pub(crate) use c_get::c_get;
pub(crate) use c_move::c_move;

use crate::find::{self, FindError, FindOptions, InformationModel, QueryLevel};
use crate::status::retrieve_failure;
use std::io::Write;
use vna_archive::model::{Found, Level, Query};
use vna_archive::{Archive, Principal};
use vna_dicom::charset::Charset;
use vna_dicom::dataset::DataSet;
use vna_dicom::parse::{parse_dataset_bytes, ParseLimits};
use vna_dicom::write::{data_set, Items};
use vna_dicom::{tags, ts, Tag, VR};
use vna_dimse::{Reply, Status, StatusKind, SubOperations};

/// Patient Root Query/Retrieve Information Model – MOVE (PS3.4 §C.6.1).
pub const PATIENT_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.1.2";
/// Study Root Query/Retrieve Information Model – MOVE (PS3.4 §C.6.2).
pub const STUDY_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";
/// Patient Root Query/Retrieve Information Model – GET (PS3.4 §C.6.1).
pub const PATIENT_ROOT_GET: &str = "1.2.840.10008.5.1.4.1.2.1.3";
/// Study Root Query/Retrieve Information Model – GET (PS3.4 §C.6.2).
pub const STUDY_ROOT_GET: &str = "1.2.840.10008.5.1.4.1.2.2.3";

/// The retrieve models served.
pub(crate) fn accepts(abstract_syntax: &str) -> bool {
    model_of(abstract_syntax).is_some()
}

fn model_of(sop_class: &str) -> Option<InformationModel> {
    match sop_class.trim_end_matches(['\0', ' ']) {
        PATIENT_ROOT_MOVE | PATIENT_ROOT_GET => Some(InformationModel::PatientRoot),
        STUDY_ROOT_MOVE | STUDY_ROOT_GET => Some(InformationModel::StudyRoot),
        _ => None,
    }
}

/// An identifier holds a handful of keys.
const IDENTIFIER_LIMITS: ParseLimits = ParseLimits { max_header_bytes: 1 << 20, bulk_threshold: 1024, max_depth: 8 };

/// Sub-operation counts are US (PS3.7 Table 9.3-8): more matches cannot be counted.
const MAX_SUBOPERATIONS: usize = u16::MAX as usize;

/// The unique key of a level (PS3.4 §C.6.1.1, §C.6.2.1).
fn unique_key(level: QueryLevel) -> Tag {
    match level {
        QueryLevel::Patient => tags::PATIENT_ID,
        QueryLevel::Study => tags::STUDY_INSTANCE_UID,
        QueryLevel::Series => tags::SERIES_INSTANCE_UID,
        QueryLevel::Image => tags::SOP_INSTANCE_UID,
    }
}

/// The catalog query (at instance level) for a C-MOVE/C-GET identifier (PS3.4 §C.4.2.1.4,
/// §C.4.3.1.4): Query/Retrieve Level and the unique keys of that level and the levels above
/// (hierarchical retrieve, §C.4.2.2.1); other keys are ignored, as the identifier may hold
/// nothing else. The unique key of the level must have a value (one UID or a list).
pub(crate) fn retrieve_query(identifier: &[u8], transfer_syntax: &str, sop_class: &str, max_list: usize) -> Result<Query, FindError> {
    let model = model_of(sop_class).ok_or(FindError::UnsupportedModel)?;
    let parsed = parse_dataset_bytes(identifier, transfer_syntax, IDENTIFIER_LIMITS).map_err(FindError::Unparseable)?;
    let kept = [
        tags::SPECIFIC_CHARACTER_SET,
        tags::QUERY_RETRIEVE_LEVEL,
        tags::PATIENT_ID,
        tags::STUDY_INSTANCE_UID,
        tags::SERIES_INSTANCE_UID,
        tags::SOP_INSTANCE_UID,
    ];
    let ds = DataSet { elements: parsed.dataset.elements.into_iter().filter(|e| kept.contains(&e.tag)).collect() };
    let req = find::request_from_dataset(&ds, model, FindOptions { max_list, ..FindOptions::default() })?;
    let key = unique_key(req.level);
    if ds.first_text(key, &Charset::default()).is_empty() {
        return Err(FindError::MissingUniqueKey { tag: key });
    }
    Ok(Query { level: Level::Instance, limit: Some(MAX_SUBOPERATIONS as u32 + 1), ..req.query })
}

/// The instances a request designates, or the refusal (PS3.4 Table C.4-2, C.4-3).
pub(crate) async fn resolve(
    archive: &Archive,
    who: &Principal,
    identifier: &[u8],
    transfer_syntax: &str,
    sop_class: &str,
) -> Result<Vec<Found>, Reply> {
    let query = retrieve_query(identifier, transfer_syntax, sop_class, archive.config().max_list_items as usize).map_err(|e| {
        tracing::info!(error = %e, "retrieve identifier refused");
        let mut reply = Reply::with_comment(Status(e.status()), &e.error_comment());
        if let Some(tag) = e.offending_element() {
            reply.offending_elements = vec![(tag.0, tag.1)];
        }
        reply
    })?;
    let rows = archive.retrieve_instances(who, &query).await.map_err(|e| retrieve_failure(&e))?;
    if rows.len() > MAX_SUBOPERATIONS {
        return Err(Reply::with_comment(Status::OUT_OF_RESOURCES_MATCHES, "more than 65535 instances: retrieve a lower level"));
    }
    Ok(rows)
}

/// Progress of the sub-operations.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    total: u16,
    completed: u16,
    warning: u16,
    /// SOP Instance UIDs of failed sub-operations.
    failed: Vec<String>,
    /// At least one C-STORE-RQ went out.
    attempted: bool,
}

impl Tally {
    pub(crate) fn new(total: usize) -> Tally {
        Tally { total: u16::try_from(total).unwrap_or(u16::MAX), ..Tally::default() }
    }

    fn done(&self) -> u16 {
        self.completed.saturating_add(self.warning).saturating_add(u16::try_from(self.failed.len()).unwrap_or(u16::MAX))
    }

    /// Counts with Number of Remaining Sub-operations (Pending and Cancel responses).
    pub(crate) fn counts(&self) -> SubOperations {
        SubOperations {
            remaining: Some(self.total.saturating_sub(self.done())),
            completed: self.completed,
            failed: u16::try_from(self.failed.len()).unwrap_or(u16::MAX),
            warning: self.warning,
        }
    }

    /// Records the C-STORE-RSP status of a sub-operation (PS3.4 §C.4.2.3.1: warnings count
    /// apart from failures).
    pub(crate) fn answered(&mut self, sop_instance: &str, status: Status) {
        self.attempted = true;
        match status.kind() {
            StatusKind::Success => self.completed += 1,
            StatusKind::Warning => self.warning += 1,
            _ => self.failed.push(sop_instance.to_owned()),
        }
    }

    pub(crate) fn failed(&mut self, sop_instance: &str) {
        self.failed.push(sop_instance.to_owned());
    }

    pub(crate) fn sent(&mut self) {
        self.attempted = true;
    }

    /// The final response (PS3.4 §C.4.2.1.5, §C.4.3.1.5): Cancel (with the remaining count),
    /// Success, Warning B000 when some sub-operations failed or warned, A702 when failures
    /// happened without any sub-operation reaching the peer (no association, no acceptable
    /// context). The Failed SOP Instance UID List goes in the identifier whenever it is not
    /// empty, in the request context's transfer syntax.
    pub(crate) fn final_reply(&self, cancelled: bool, transfer_syntax: &str) -> Reply {
        let mut counts = self.counts();
        let mut reply = if cancelled {
            Reply::status(Status::CANCEL)
        } else if self.failed.is_empty() && self.warning == 0 {
            Reply::status(Status::SUCCESS)
        } else if !self.attempted {
            Reply::with_comment(Status::OUT_OF_RESOURCES_SUBOPERATIONS, "no sub-operation could be performed")
        } else {
            Reply::status(Status::SUBOPERATIONS_WITH_FAILURES)
        };
        if !cancelled {
            counts.remaining = None;
        }
        reply.suboperations = Some(counts);
        if !self.failed.is_empty() {
            reply.data_set = failed_list(&self.failed, transfer_syntax);
        }
        reply
    }
}

/// Failed SOP Instance UID List (0008,0058) as an identifier in `transfer_syntax`; UIDs that
/// would overflow the 16-bit length of explicit VR UI are left out (the counts stay right).
fn failed_list(uids: &[String], transfer_syntax: &str) -> Option<Vec<u8>> {
    let mut value = String::new();
    for uid in uids {
        if value.len() + uid.len() + 2 > usize::from(u16::MAX) - 1 {
            tracing::warn!(failed = uids.len(), "failed SOP instance UID list truncated to fit one element");
            break;
        }
        if !value.is_empty() {
            value.push('\\');
        }
        value.push_str(uid);
    }
    let items = Items::new().str(tags::FAILED_SOP_INSTANCE_UID_LIST, VR::UI, &value);
    match transfer_syntax.trim_end_matches(['\0', ' ']) {
        ts::IMPLICIT_VR_LITTLE_ENDIAN => Some(data_set(&items, ts::IMPLICIT_VR_LITTLE_ENDIAN)),
        ts::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN => {
            let plain = data_set(&items, ts::EXPLICIT_VR_LITTLE_ENDIAN);
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&plain).and_then(|()| enc.finish()).ok()
        }
        // Explicit VR little endian, and what a query context should not use: the identifier
        // is then omitted rather than written in an encoding we do not produce.
        ts::EXPLICIT_VR_LITTLE_ENDIAN => Some(data_set(&items, ts::EXPLICIT_VR_LITTLE_ENDIAN)),
        _ => None,
    }
}
