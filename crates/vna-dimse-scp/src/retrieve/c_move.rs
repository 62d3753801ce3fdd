//! C-MOVE SCP (PS3.4 §C.4.2): the designated instances go to the Move Destination, a known AE,
//! over sub-associations we request with our AE title as calling AE. Each proposes one
//! presentation context per SOP class and transfer syntax (`proposal`): the stored syntax,
//! then explicit and implicit VR little endian where the archive can re-encode or decode
//! (PS3.4 §C.4.2.1.4). Each instance goes in its stored syntax whenever the destination
//! accepted that context, and only otherwise in the first accepted fallback. Each C-STORE
//! carries the Move Originator AE Title and Message ID (PS3.7 Table 9.3-1).

use super::proposal::{plan, SubAssociation};
use super::source::open_data_set;
use super::{resolve, Tally};
use crate::Destination;
use std::sync::Arc;
use vna_archive::model::Found;
use vna_archive::{Archive, Principal};
use vna_dimse::{AssociationInfo, Client, ClientOptions, Command, Reply, Responder, Status, SubStoreOutcome};

/// C-MOVE for an AE allowed to retrieve. `destination` is the known AE named by Move
/// Destination, `None` when there is none (0xA801, PS3.4 Table C.4-2).
pub(crate) async fn c_move(
    archive: &Arc<Archive>,
    who: &Principal,
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
    let rows = match resolve(archive, who, identifier, &transfer_syntax, sop_class).await {
        Ok(rows) => rows,
        Err(reply) => return reply,
    };
    let mut tally = Tally::new(rows.len());
    if rows.is_empty() {
        return tally.final_reply(false, &transfer_syntax);
    }
    let addr = format!("{}:{}", destination.host, destination.port);
    let originator = (info.calling_ae.as_str(), request.message_id.unwrap_or(0));
    let subs = plan(rows.iter().map(|r| (r.instance.sop_class_uid.as_str(), vna_archive::deliverable_syntaxes(r))));
    if subs.len() > 1 {
        tracing::info!(sub_associations = subs.len(), "c-move: more SOP class/transfer syntax pairs than one association carries");
    }
    let options = ClientOptions { tls: destination.tls.clone(), ..ClientOptions::default() };
    let mut cancelled = false;
    'subs: for (k, plan) in subs.iter().enumerate() {
        let contexts = plan.proposed();
        let mut sub: Option<Client> = None;
        for (j, &i) in plan.rows.iter().enumerate() {
            if responder.cancelled() {
                cancelled = true;
                break 'subs;
            }
            if sub.is_none() {
                match Client::connect_with(&addr, &info.called_ae, dest_ae, &contexts, options.clone()).await {
                    Ok(c) => sub = Some(c),
                    Err(e) => {
                        // The destination is down or refuses us: this and every remaining
                        // sub-operation fail (PS3.4 §C.4.2.3.1); counts and list say so.
                        tracing::warn!(destination = %dest_ae, error = %e, "c-move: cannot associate with the move destination");
                        let rest = plan.rows[j..].iter().chain(subs[k + 1..].iter().flat_map(|s: &SubAssociation| &s.rows));
                        rest.for_each(|&r| tally.failed(rows[r].instance.sop_uid.as_str()));
                        break 'subs;
                    }
                }
            }
            let Some(client) = sub.as_mut() else { break 'subs };
            if send_one(archive, client, &rows[i], originator, &mut tally).await {
                // The sub-association is in an unknown state: abort it, open a new one next time.
                if let Some(c) = sub.take() {
                    c.abort().await;
                }
            }
            if responder.pending(Status::PENDING, None, Some(tally.counts())).await.is_err() {
                // The requester is gone: stop sending on its behalf.
                if let Some(c) = sub {
                    let _ = c.release().await;
                }
                break 'subs;
            }
        }
        if let Some(c) = sub {
            let _ = c.release().await;
        }
    }
    let c = tally.counts();
    tracing::info!(calling_ae = %info.calling_ae, destination = %dest_ae, completed = c.completed, failed = c.failed, warning = c.warning, cancelled, "c-move done");
    tally.final_reply(cancelled, &transfer_syntax)
}

/// One sub-operation, on the accepted context of the instance's most preferred deliverable
/// syntax (the stored one first); true when the sub-association can carry nothing more.
async fn send_one(archive: &Arc<Archive>, client: &mut Client, row: &Found, originator: (&str, u16), tally: &mut Tally) -> bool {
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
