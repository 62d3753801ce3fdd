//! Work that follows a response on the same association: the final response sent early, then
//! an N-EVENT-REPORT from the SCP to the requester and its response (PS3.7 §10.1.1, §10.3.1),
//! as the Storage Commitment Push Model does after N-ACTION (PS3.4 §J.3.3).

use crate::association::Incoming;
use crate::command::{Command, CommandField, DATA_SET_PRESENT};
use crate::error::DimseError;
use crate::handler::{Reply, Responder};
use crate::status::Status;

impl Command {
    /// N-EVENT-REPORT-RQ (PS3.7 §10.3.1 Table 10.3-1); the Event Information follows when
    /// `with_data` is set.
    pub fn event_report_rq(message_id: u16, sop_class: &str, sop_instance: &str, event_type_id: u16, with_data: bool) -> Command {
        let mut c = Command::new(CommandField::N_EVENT_REPORT_RQ);
        c.message_id = Some(message_id);
        c.affected_sop_class_uid = Some(sop_class.to_owned());
        c.affected_sop_instance_uid = Some(sop_instance.to_owned());
        c.event_type_id = Some(event_type_id);
        if with_data {
            c.data_set_type = DATA_SET_PRESENT;
        }
        c
    }

    /// N-ACTION-RQ (PS3.7 §10.3.4 Table 10.3-7); the Action Information follows when
    /// `with_data` is set.
    pub fn n_action_rq(message_id: u16, sop_class: &str, sop_instance: &str, action_type_id: u16, with_data: bool) -> Command {
        let mut c = Command::new(CommandField::N_ACTION_RQ);
        c.message_id = Some(message_id);
        c.requested_sop_class_uid = Some(sop_class.to_owned());
        c.requested_sop_instance_uid = Some(sop_instance.to_owned());
        c.action_type_id = Some(action_type_id);
        if with_data {
            c.data_set_type = DATA_SET_PRESENT;
        }
        c
    }
}

/// How an N-EVENT-REPORT sent on the request's association ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventReportOutcome {
    /// The requester answered with this status.
    Answered(Status),
    /// The requester released, aborted or closed before the report could be sent or answered:
    /// the report is to be sent on another association (PS3.4 §J.3.3) or is lost.
    PeerLeft,
    /// The requester sent a new request instead of the response; the association loop serves
    /// it, and the report counts as not delivered.
    Interrupted,
}

impl Responder<'_> {
    /// Sends the final response now, so that the handler can go on with what follows it on
    /// the same association; the reply the handler then returns is not sent.
    pub async fn reply_now(&mut self, reply: Reply) -> Result<(), DimseError> {
        let mut rsp = self.request.response(reply.status);
        reply.apply(&mut rsp);
        self.replied = true;
        let sent = self.assoc.send_message(self.context_id, &rsp, reply.data_set.as_deref()).await;
        if sent.is_err() {
            self.broken = true;
        }
        sent
    }

    /// Sends an N-EVENT-REPORT-RQ on the request's presentation context and waits for its
    /// N-EVENT-REPORT-RSP (PS3.7 §10.1.1). `event_information` is encoded in the context's
    /// transfer syntax. A new request that arrives meanwhile is kept for the association loop;
    /// so is a release request, and the report then counts as not delivered.
    pub async fn event_report(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        event_type_id: u16,
        event_information: Option<&[u8]>,
    ) -> Result<EventReportOutcome, DimseError> {
        if self.assoc.peer_leaving() {
            return Ok(EventReportOutcome::PeerLeft);
        }
        let message_id = self.assoc.next_message_id();
        let rq = Command::event_report_rq(message_id, sop_class, sop_instance, event_type_id, event_information.is_some());
        if let Err(e) = self.assoc.send_message(self.context_id, &rq, event_information).await {
            self.broken = true;
            return Err(e);
        }
        loop {
            let incoming = match self.assoc.receive_command().await {
                Ok(i) => i,
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            };
            match incoming {
                Incoming::Command { command, .. }
                    if command.field == CommandField::N_EVENT_REPORT_RSP && command.message_id_being_responded_to == Some(message_id) =>
                {
                    // Event Reply (PS3.7 §10.1.1.1.7): nothing we use; read past it.
                    if let Err(e) = self.assoc.drain_data().await {
                        self.broken = true;
                        return Err(e);
                    }
                    return Ok(EventReportOutcome::Answered(command.status.unwrap_or(Status::PROCESSING_FAILURE)));
                }
                // A late C-CANCEL-RQ for the finished operation: nothing to do (PS3.7 §9.3.2.3).
                Incoming::Command { command, .. } if command.field == CommandField::C_CANCEL_RQ => {}
                other => {
                    let left = matches!(other, Incoming::ReleaseRequested | Incoming::Aborted | Incoming::Closed);
                    if !self.assoc.unread(other) {
                        self.broken = true;
                    }
                    return Ok(if left { EventReportOutcome::PeerLeft } else { EventReportOutcome::Interrupted });
                }
            }
        }
    }
}
