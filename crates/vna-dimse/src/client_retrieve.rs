//! The SCU side of retrieval: C-MOVE (PS3.7 §9.1.4) and C-GET (PS3.7 §9.1.3) with their
//! pending responses, C-CANCEL (PS3.7 §9.3.2.3) on the caller's word, the C-STORE
//! sub-operations of a C-GET received into a caller's sink, and the C-STORE a C-MOVE SCP sends
//! on its sub-association (with Move Originator, PS3.7 §9.3.1.1).

use crate::association::Incoming;
use crate::client::Client;
use crate::command::{Command, CommandField, DATA_SET_PRESENT, PRIORITY_MEDIUM};
use crate::error::DimseError;
use crate::handler::{DataStream, StoreRequest, SubOperations};
use crate::status::Status;
use crate::suboperation::SubStoreOutcome;
use async_trait::async_trait;
use tokio::io::AsyncRead;

/// Largest identifier accepted in a C-MOVE/C-GET response (a Failed SOP Instance UID List).
const MAX_RESPONSE_IDENTIFIER: usize = 16 << 20;

/// What a C-MOVE or C-GET returned.
#[derive(Debug, Clone)]
pub struct RetrieveOutcome {
    /// Counts of every pending response, in order.
    pub pending: Vec<SubOperations>,
    /// The final response.
    pub response: Command,
    /// Its identifier (raw, in the context's transfer syntax): the Failed SOP Instance UID
    /// List when some sub-operations failed.
    pub identifier: Option<Vec<u8>>,
}

impl RetrieveOutcome {
    pub fn status(&self) -> Status {
        self.response.status.unwrap_or(Status::PROCESSING_FAILURE)
    }

    /// The counts of the final response.
    pub fn counts(&self) -> SubOperations {
        counts_of(&self.response)
    }
}

fn counts_of(c: &Command) -> SubOperations {
    SubOperations {
        remaining: c.remaining_suboperations,
        completed: c.completed_suboperations.unwrap_or(0),
        failed: c.failed_suboperations.unwrap_or(0),
        warning: c.warning_suboperations.unwrap_or(0),
    }
}

/// Where the C-STORE sub-operations of a C-GET go. The returned status is sent back in the
/// C-STORE-RSP; an error of `data.next()` means the association is gone.
#[async_trait]
pub trait StoreSink: Send {
    async fn store(&mut self, request: StoreRequest<'_>, data: &mut DataStream<'_>) -> Status;
}

impl Command {
    /// C-MOVE-RQ (PS3.7 §9.3.4.1); the identifier follows.
    pub fn move_rq(message_id: u16, sop_class: &str, destination: &str) -> Command {
        let mut c = Command::new(CommandField::C_MOVE_RQ);
        c.message_id = Some(message_id);
        c.affected_sop_class_uid = Some(sop_class.to_owned());
        c.priority = Some(PRIORITY_MEDIUM);
        c.move_destination = Some(destination.to_owned());
        c.data_set_type = DATA_SET_PRESENT;
        c
    }

    /// C-GET-RQ (PS3.7 §9.3.3.1); the identifier follows.
    pub fn get_rq(message_id: u16, sop_class: &str) -> Command {
        let mut c = Command::new(CommandField::C_GET_RQ);
        c.message_id = Some(message_id);
        c.affected_sop_class_uid = Some(sop_class.to_owned());
        c.priority = Some(PRIORITY_MEDIUM);
        c.data_set_type = DATA_SET_PRESENT;
        c
    }

    /// C-CANCEL-RQ for the operation with `message_id` (PS3.7 §9.3.2.3).
    pub fn cancel_rq(message_id: u16) -> Command {
        let mut c = Command::new(CommandField::C_CANCEL_RQ);
        c.message_id_being_responded_to = Some(message_id);
        c
    }
}

impl Client {
    fn model_context(&mut self, model: &str) -> Result<u8, DimseError> {
        self.association()
            .find_context(model, None)
            .map(|c| c.id)
            .ok_or_else(|| DimseError::NoPresentationContext { abstract_syntax: model.to_owned(), transfer_syntax: "any".to_owned() })
    }

    /// C-MOVE of what `identifier` designates to the AE `destination`.
    pub async fn move_(&mut self, model: &str, destination: &str, identifier: &[u8]) -> Result<RetrieveOutcome, DimseError> {
        self.move_with(model, destination, identifier, |_| true).await
    }

    /// C-MOVE; after each pending response `keep_going` sees its counts, and a `false` sends
    /// C-CANCEL-RQ (once).
    pub async fn move_with(
        &mut self,
        model: &str,
        destination: &str,
        identifier: &[u8],
        keep_going: impl FnMut(&SubOperations) -> bool + Send,
    ) -> Result<RetrieveOutcome, DimseError> {
        let context = self.model_context(model)?;
        let id = self.next_message_id();
        let rq = Command::move_rq(id, model, destination);
        self.association().send_message(context, &rq, Some(identifier)).await?;
        self.retrieve_responses(context, id, CommandField::C_MOVE_RSP, None, keep_going).await
    }

    /// C-GET of what `identifier` designates; the C-STORE sub-operations go to `sink`. The
    /// association must have been requested with the SCP role for the storage classes
    /// ([`Client::connect_with_roles`]).
    pub async fn get(&mut self, model: &str, identifier: &[u8], sink: &mut dyn StoreSink) -> Result<RetrieveOutcome, DimseError> {
        self.get_with(model, identifier, sink, |_| true).await
    }

    /// C-GET with `keep_going` as for [`Client::move_with`].
    pub async fn get_with(
        &mut self,
        model: &str,
        identifier: &[u8],
        sink: &mut dyn StoreSink,
        keep_going: impl FnMut(&SubOperations) -> bool + Send,
    ) -> Result<RetrieveOutcome, DimseError> {
        let context = self.model_context(model)?;
        let id = self.next_message_id();
        let rq = Command::get_rq(id, model);
        self.association().send_message(context, &rq, Some(identifier)).await?;
        self.retrieve_responses(context, id, CommandField::C_GET_RSP, Some(sink), keep_going).await
    }

    async fn retrieve_responses(
        &mut self,
        context: u8,
        id: u16,
        expected: CommandField,
        mut sink: Option<&mut dyn StoreSink>,
        mut keep_going: impl FnMut(&SubOperations) -> bool + Send,
    ) -> Result<RetrieveOutcome, DimseError> {
        let mut pending = Vec::new();
        let mut cancel_sent = false;
        loop {
            let (store_context, command) = match self.association().receive_command().await? {
                Incoming::Command { context_id, command } => (context_id, command),
                Incoming::Aborted => return Err(DimseError::Aborted),
                Incoming::Closed => return Err(DimseError::Closed),
                Incoming::ReleaseRequested => return Err(DimseError::Released { step: "waiting for a retrieve response" }),
            };
            if command.field == CommandField::C_STORE_RQ {
                let Some(sink) = sink.as_deref_mut() else {
                    return Err(DimseError::UnexpectedResponse { expected: expected.0, got: command.field.0 });
                };
                receive_store(self, store_context, &command, sink).await?;
                continue;
            }
            if command.field != expected || command.message_id_being_responded_to != Some(id) {
                return Err(DimseError::UnexpectedResponse { expected: expected.0, got: command.field.0 });
            }
            let data =
                if command.has_data_set() { Some(self.association().receive_data_set(MAX_RESPONSE_IDENTIFIER).await?) } else { None };
            match command.status {
                Some(s) if s.is_pending() => {
                    let counts = counts_of(&command);
                    pending.push(counts);
                    if !cancel_sent && !keep_going(&counts) {
                        self.association().send_command(context, &Command::cancel_rq(id)).await?;
                        cancel_sent = true;
                    }
                }
                _ => return Ok(RetrieveOutcome { pending, response: *command, identifier: data }),
            }
        }
    }

    /// The C-STORE-RQ of a C-MOVE sub-operation (PS3.4 §C.4.2.2) on this (sub-)association,
    /// with the data set streamed from `data` and the Move Originator AE Title and Message ID
    /// of the C-MOVE-RQ it serves (PS3.7 Table 9.3-1).
    pub async fn store_suboperation<R: AsyncRead + Unpin>(
        &mut self,
        context_id: u8,
        sop_class: &str,
        sop_instance: &str,
        data: R,
        originator: Option<(&str, u16)>,
    ) -> Result<SubStoreOutcome, DimseError> {
        let mut rq = Command::store_rq(self.next_message_id(), sop_class, sop_instance);
        if let Some((ae, id)) = originator {
            rq.move_originator_ae_title = Some(ae.to_owned());
            rq.move_originator_message_id = Some(id);
        }
        if let Some(e) = self.association().send_streamed(context_id, &rq, data).await? {
            return Ok(SubStoreOutcome::SourceFailed(e));
        }
        let rsp = self.response(CommandField::C_STORE_RQ).await?;
        self.association().drain_data().await?;
        Ok(SubStoreOutcome::Response(Box::new(rsp)))
    }
}

/// One C-STORE sub-operation of a C-GET: the sink reads the data set, the rest is discarded,
/// the C-STORE-RSP goes back with the sink's status (PS3.7 §9.3.1.2).
async fn receive_store(client: &mut Client, context_id: u8, command: &Command, sink: &mut dyn StoreSink) -> Result<(), DimseError> {
    let assoc = client.association();
    let transfer_syntax = assoc.context(context_id).map(|c| c.transfer_syntax.clone()).unwrap_or_default();
    let (Some(class), Some(instance)) = (command.affected_sop_class_uid.clone(), command.affected_sop_instance_uid.clone()) else {
        assoc.drain_data().await?;
        return assoc.send_command(context_id, &command.response(Status::MISTYPED_ARGUMENT)).await;
    };
    let request = StoreRequest { command, sop_class_uid: &class, sop_instance_uid: &instance, transfer_syntax: &transfer_syntax };
    let mut stream = DataStream { assoc, failed: false };
    let status = sink.store(request, &mut stream).await;
    if stream.failed {
        return Err(DimseError::Aborted);
    }
    assoc.drain_data().await?;
    assoc.send_command(context_id, &command.response(status)).await
}
