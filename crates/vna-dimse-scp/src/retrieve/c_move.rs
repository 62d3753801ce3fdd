//! C-MOVE SCP (PS3.4 §C.4.2): the designated instances go to the Move Destination, a known AE,
//! over a sub-association we request with our AE title as calling AE. Each presentation
//! context proposes a SOP class with the transfer syntaxes the archive can deliver its
//! instances in, stored first, then explicit and implicit VR little endian where it can
//! re-encode or decode (PS3.4 §C.4.2.1.4); each instance goes on the first accepted context
//! in that order. Each C-STORE carries the Move Originator
//! AE Title and Message ID (PS3.7 Table 9.3-1).

use super::source::open_data_set;
use super::{resolve, Tally};
use crate::Destination;
use std::sync::Arc;
use vna_archive::model::InstanceRow;
use vna_archive::Archive;
use vna_dimse::{AssociationInfo, Client, ClientOptions, Command, ProposedContext, Reply, Responder, Status, SubStoreOutcome};

/// PS3.8 §9.3.2.2: presentation context IDs are odd numbers 1-255.
const MAX_CONTEXTS: usize = 128;

/// One presentation context per distinct (SOP class, deliverable syntaxes) of `rows`, at most
/// 128.
fn contexts_for(rows: &[InstanceRow]) -> Vec<ProposedContext> {
    let mut out: Vec<ProposedContext> = Vec::new();
    for row in rows {
        let class = row.instance.sop_class_uid.as_str();
        let syntaxes = vna_archive::deliverable_syntaxes(row);
        if !out.iter().any(|c| c.abstract_syntax == class && c.transfer_syntaxes == syntaxes) {
            if out.len() == MAX_CONTEXTS {
                tracing::warn!(
                    max = MAX_CONTEXTS,
                    "c-move: more SOP class/transfer syntax pairs than presentation contexts; the others fail"
                );
                break;
            }
            let names: Vec<&str> = syntaxes.iter().map(String::as_str).collect();
            out.push(ProposedContext::new(class, &names));
        }
    }
    out
}

/// C-MOVE for an AE allowed to retrieve. `destination` is the known AE named by Move
/// Destination, `None` when there is none (0xA801, PS3.4 Table C.4-2).
pub(crate) async fn c_move(
    archive: &Arc<Archive>,
    destination: Option<&Destination>,
    info: &AssociationInfo,
    request: &Command,
    identifier: &[u8],
    responder: &mut Responder<'_>,
) -> Reply {
    let dest_ae = request.move_destination.as_deref().unwrap_or_default().trim();
    let Some(destination) = destination else {
        tracing::info!(calling_ae = %info.calling_ae, "c-move refused: move destination unknown");
        return Reply::with_comment(Status::MOVE_DESTINATION_UNKNOWN, "move destination unknown");
    };
    let sop_class = request.affected_sop_class_uid.as_deref().unwrap_or_default();
    let transfer_syntax = responder.transfer_syntax().to_owned();
    let rows = match resolve(archive, identifier, &transfer_syntax, sop_class).await {
        Ok(rows) => rows,
        Err(reply) => return reply,
    };
    let mut tally = Tally::new(rows.len());
    if rows.is_empty() {
        return tally.final_reply(false, &transfer_syntax);
    }
    let addr = format!("{}:{}", destination.host, destination.port);
    let originator = (info.calling_ae.as_str(), request.message_id.unwrap_or(0));
    let contexts = contexts_for(&rows);
    let mut sub: Option<Client> = None;
    let mut cancelled = false;
    for (i, row) in rows.iter().enumerate() {
        if responder.cancelled() {
            cancelled = true;
            break;
        }
        if sub.is_none() {
            match Client::connect_with(&addr, &info.called_ae, dest_ae, &contexts, ClientOptions::default()).await {
                Ok(c) => sub = Some(c),
                Err(e) => {
                    // The destination is down or refuses us: this and every remaining
                    // sub-operation fail (PS3.4 §C.4.2.3.1); counts and list say so.
                    tracing::warn!(destination = %dest_ae, error = %e, "c-move: cannot associate with the move destination");
                    rows[i..].iter().for_each(|r| tally.failed(r.instance.sop_uid.as_str()));
                    break;
                }
            }
        }
        let Some(client) = sub.as_mut() else { break };
        if send_one(archive, client, row, originator, &mut tally).await {
            // The sub-association is in an unknown state: abort it, open a new one next time.
            if let Some(c) = sub.take() {
                c.abort().await;
            }
        }
        if responder.pending(Status::PENDING, None, Some(tally.counts())).await.is_err() {
            // The requester is gone: stop sending on its behalf.
            break;
        }
    }
    if let Some(c) = sub {
        let _ = c.release().await;
    }
    let c = tally.counts();
    tracing::info!(calling_ae = %info.calling_ae, destination = %dest_ae, completed = c.completed, failed = c.failed, warning = c.warning, cancelled, "c-move done");
    tally.final_reply(cancelled, &transfer_syntax)
}

/// One sub-operation; true when the sub-association can carry nothing more.
async fn send_one(archive: &Arc<Archive>, client: &mut Client, row: &InstanceRow, originator: (&str, u16), tally: &mut Tally) -> bool {
    let (class, uid) = (row.instance.sop_class_uid.as_str(), row.instance.sop_uid.as_str());
    let chosen = vna_archive::deliverable_syntaxes(row)
        .into_iter()
        .find_map(|ts| client.association().find_context(class, Some(&ts)).map(|c| (c.id, ts)));
    let Some((context, ts)) = chosen else {
        // The destination accepted no context for this class in a syntax we can send.
        tally.failed(uid);
        return false;
    };
    let data = match open_data_set(archive, row, &ts).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "c-move: cannot read a stored object");
            tally.failed(uid);
            return false;
        }
    };
    match client.store_suboperation(context, class, uid, data, Some(originator)).await {
        Ok(SubStoreOutcome::Response(rsp)) => {
            tally.answered(uid, rsp.status.unwrap_or(Status::PROCESSING_FAILURE));
            false
        }
        Ok(SubStoreOutcome::SourceFailed(e)) => {
            tracing::warn!(error = %e, "c-move: reading a stored object failed");
            tally.failed(uid);
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "c-move: sub-operation broke off");
            tally.sent();
            tally.failed(uid);
            true
        }
    }
}
