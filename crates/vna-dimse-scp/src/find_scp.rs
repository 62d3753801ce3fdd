//! C-FIND SCP (PS3.4 §C.4.1): the identifier through the pure [`crate::find`] model, the
//! query through the archive page by page, one Pending response per match as soon as its page
//! is read, C-CANCEL honoured between matches.

use crate::find::{self, FindError, FindOptions, FindRequest, FindRow, QueryLevel, ResponseEncoding};
use crate::status::query_failure;
use std::sync::Arc;
use vna_archive::model::{Found, PatientRow, Query, SeriesRow, StudyRow};
use vna_archive::{Archive, ArchiveError, Principal};
use vna_dimse::{AssociationInfo, Command, Reply, Responder, Status};

/// Rows fetched per catalog query. A query matching a million instances neither holds them
/// all nor delays the first response; a page is small enough to stay cheap and large enough
/// that the per-query overhead is amortised.
const PAGE: u32 = 500;

/// The FIND information models served (PS3.4 §C.6.1, §C.6.2).
pub(crate) fn accepts(abstract_syntax: &str) -> bool {
    find::InformationModel::from_sop_class(abstract_syntax).is_some()
}

/// One page of rows at the request's level.
enum Page {
    Patients(Vec<PatientRow>),
    Studies(Vec<StudyRow>),
    Series(Vec<SeriesRow>),
    Images(Vec<Found>),
}

impl Page {
    fn rows(&self) -> Vec<FindRow<'_>> {
        match self {
            Page::Patients(r) => r.iter().map(FindRow::Patient).collect(),
            Page::Studies(r) => r.iter().map(FindRow::Study).collect(),
            Page::Series(r) => r.iter().map(FindRow::Series).collect(),
            Page::Images(r) => r.iter().map(|f| FindRow::Image(f)).collect(),
        }
    }
}

async fn fetch(archive: &Archive, who: &Principal, level: QueryLevel, q: &Query) -> Result<Page, ArchiveError> {
    Ok(match level {
        QueryLevel::Patient => Page::Patients(archive.search_patients(who, q).await?),
        QueryLevel::Study => Page::Studies(archive.search_studies(who, q).await?),
        QueryLevel::Series => Page::Series(archive.search_series(who, q).await?),
        QueryLevel::Image => Page::Images(archive.search_instances(who, q).await?),
    })
}

/// The failure reply of a refused identifier (PS3.4 §C.4.1.1.4), with the Offending Element.
fn refused(e: &FindError) -> Reply {
    let mut reply = Reply::with_comment(Status(e.status()), &e.error_comment());
    if let Some(tag) = e.offending_element() {
        reply.offending_elements = vec![(tag.0, tag.1)];
    }
    reply
}

/// C-FIND for an AE allowed to query: parse, match page by page, answer.
pub(crate) async fn c_find(
    archive: &Arc<Archive>,
    who: &Principal,
    info: &AssociationInfo,
    request: &Command,
    identifier: &[u8],
    responder: &mut Responder<'_>,
) -> Reply {
    let Some(encoding) = ResponseEncoding::for_transfer_syntax(responder.transfer_syntax()) else {
        return Reply::with_comment(crate::status::UNABLE_TO_PROCESS, "transfer syntax of the context cannot carry identifiers");
    };
    let sop_class = request.affected_sop_class_uid.as_deref().unwrap_or_default();
    // The toolkit negotiates no SOP Class Extended Negotiation (PS3.4 §C.5.1.1): no fuzzy
    // semantic matching of names, no relational queries.
    let options = FindOptions { max_list: archive.config().max_list_items as usize, ..FindOptions::default() };
    let req = match find::parse_request(identifier, responder.transfer_syntax(), sop_class, options) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(calling_ae = %info.calling_ae, error = %e, "c-find refused");
            return refused(&e);
        }
    };
    // PS3.4 §C.4.1.1.4: 0xFF01 when optional keys were not supported for matching/return.
    let pending = if req.unsupported.is_empty() { Status::PENDING } else { Status::PENDING_WARNING };
    let retrieve_ae = (!info.called_ae.is_empty()).then_some(info.called_ae.as_str());
    match stream_matches(archive, who, &req, pending, retrieve_ae, encoding, responder).await {
        Ok(Outcome::Done(matches)) => {
            tracing::debug!(calling_ae = %info.calling_ae, level = req.level.code(), matches, "c-find done");
            Reply::status(Status::SUCCESS)
        }
        // PS3.4 Table C.4-1 (FE00, matching terminated due to Cancel request; PS3.7 §9.3.2.3).
        Ok(Outcome::Cancelled(matches)) => {
            tracing::debug!(calling_ae = %info.calling_ae, matches, "c-find cancelled");
            Reply::status(Status::CANCEL)
        }
        Ok(Outcome::PeerGone) => Reply::status(Status::PROCESSING_FAILURE),
        Err(e) => {
            tracing::warn!(calling_ae = %info.calling_ae, error = %e, source = ?std::error::Error::source(&e), "c-find query failed");
            query_failure(&e)
        }
    }
}

enum Outcome {
    Done(u64),
    Cancelled(u64),
    /// Sending a pending response failed: the association is gone.
    PeerGone,
}

/// Sends one pending response per matching row, reading the rows page by page.
async fn stream_matches(
    archive: &Archive,
    who: &Principal,
    req: &FindRequest,
    pending: Status,
    retrieve_ae: Option<&str>,
    encoding: ResponseEncoding,
    responder: &mut Responder<'_>,
) -> Result<Outcome, ArchiveError> {
    let mut query = Query { limit: Some(PAGE), offset: 0, ..req.query.clone() };
    let mut sent = 0u64;
    loop {
        if responder.cancelled() {
            return Ok(Outcome::Cancelled(sent));
        }
        let page = fetch(archive, who, req.level, &query).await?;
        let rows = page.rows();
        for row in &rows {
            if responder.cancelled() {
                return Ok(Outcome::Cancelled(sent));
            }
            let identifier = find::response_identifier(req, *row, retrieve_ae, encoding);
            if responder.pending(pending, Some(&identifier), None).await.is_err() {
                return Ok(Outcome::PeerGone);
            }
            sent += 1;
        }
        // A short page is the last one. Offsets over a changing catalog may repeat or skip a
        // row that moved between pages; each page itself is consistent.
        let Some(next) = query.offset.checked_add(PAGE) else { return Ok(Outcome::Done(sent)) };
        if rows.len() < PAGE as usize {
            return Ok(Outcome::Done(sent));
        }
        query.offset = next;
    }
}
