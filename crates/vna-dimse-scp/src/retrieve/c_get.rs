//! C-GET SCP (PS3.4 §C.4.3): the designated instances go back as C-STORE sub-operations on the
//! C-GET's own association, on presentation contexts whose storage class the requester took
//! the SCP role for (role selection, PS3.7 §D.3.3.4; PS3.4 §C.4.3.1: the sub-operations use
//! the contexts the requester proposed). The instance's deliverable syntaxes are tried in
//! order of preference, each against every such context: a requester that offered the stored
//! syntax in any context gets the stored object, whatever order its contexts came in, and only
//! otherwise a re-encoded or decoded one.

use super::source::open_data_set;
use super::{resolve, Tally};
use std::sync::Arc;
use vna_archive::{Archive, Principal};
use vna_dimse::{AssociationInfo, Command, Reply, Responder, Status, SubStoreOutcome};

/// C-GET for an AE allowed to retrieve.
pub(crate) async fn c_get(
    archive: &Arc<Archive>,
    who: &Principal,
    info: &AssociationInfo,
    request: &Command,
    identifier: &[u8],
    responder: &mut Responder<'_>,
) -> Reply {
    let sop_class = request.affected_sop_class_uid.as_deref().unwrap_or_default();
    let transfer_syntax = responder.transfer_syntax().to_owned();
    let rows = match resolve(archive, who, identifier, &transfer_syntax, sop_class).await {
        Ok(rows) => rows,
        Err(reply) => return reply,
    };
    let mut tally = Tally::new(rows.len());
    let mut cancelled = false;
    for row in &rows {
        if responder.cancelled() {
            cancelled = true;
            break;
        }
        let (class, uid) = (row.instance.sop_class_uid.as_str(), row.instance.sop_uid.as_str());
        let chosen = vna_archive::deliverable_syntaxes(row).into_iter().find_map(|ts| responder.store_context(class, &ts).map(|c| (c, ts)));
        let Some((context, ts)) = chosen else {
            // No context for this class in a syntax we can send it in, or no SCP role for it.
            tally.failed(uid);
            continue;
        };
        match open_data_set(archive, row, &ts).await {
            Err(e) => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "c-get: cannot read a stored object");
                tally.failed(uid);
            }
            Ok(data) => match responder.store(context, class, uid, data).await {
                Ok(SubStoreOutcome::Response(rsp)) => tally.answered(uid, rsp.status.unwrap_or(Status::PROCESSING_FAILURE)),
                Ok(SubStoreOutcome::SourceFailed(e)) => {
                    tracing::warn!(error = %e, "c-get: reading a stored object failed");
                    tally.failed(uid);
                }
                Err(e) => {
                    // Half a message went out, or the requester left: the toolkit aborts the
                    // association; this reply is never sent.
                    tracing::warn!(calling_ae = %info.calling_ae, error = %e, "c-get: sub-operation broke off");
                    return Reply::status(Status::PROCESSING_FAILURE);
                }
            },
        }
        if responder.pending(Status::PENDING, None, Some(tally.counts())).await.is_err() {
            return Reply::status(Status::PROCESSING_FAILURE);
        }
    }
    let c = tally.counts();
    tracing::info!(calling_ae = %info.calling_ae, completed = c.completed, failed = c.failed, warning = c.warning, cancelled, "c-get done");
    tally.final_reply(cancelled, &transfer_syntax)
}
