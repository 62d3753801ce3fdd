//! C-STORE requests with a streamed data set: the SCU's C-STORE and the C-STORE sub-operations
//! an SCP sends on the association of a C-GET (PS3.4 §C.4.3.3, PS3.7 §9.1.1), where the
//! requester may send a C-CANCEL-RQ while a sub-operation is in flight (PS3.7 §9.3.3.3).

use crate::association::{Association, Incoming};
use crate::command::{Command, CommandField};
use crate::error::DimseError;
use crate::handler::Responder;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How a C-STORE sub-operation ended, when the association is still usable.
#[derive(Debug)]
pub enum SubStoreOutcome {
    /// The peer answered with this C-STORE-RSP.
    Response(Box<Command>),
    /// The data source failed before anything was sent: the sub-operation failed, the
    /// association is unharmed.
    SourceFailed(std::io::Error),
}

impl Association {
    /// Sends `command` (a C-STORE-RQ) and the data set read from `data`, the last fragment
    /// flagged once the reader ends (PS3.8 §E.2). The first fragment is read before the
    /// command goes out, so a source that fails at once costs nothing
    /// (`Ok(Some(error))`); a source failing later is `Err(DimseError::ReadFile)` and leaves
    /// a message half sent: the association must then be aborted.
    pub async fn send_streamed<R: AsyncRead + Unpin>(
        &mut self,
        context_id: u8,
        command: &Command,
        mut data: R,
    ) -> Result<Option<std::io::Error>, DimseError> {
        let size = self.max_fragment();
        let mut current = vec![0u8; size];
        let mut filled = match fill(&mut data, &mut current).await {
            Ok(n) => n,
            Err(e) => return Ok(Some(e)),
        };
        self.send_command(context_id, command).await?;
        loop {
            let mut next = vec![0u8; size];
            let next_filled = if filled == size { fill(&mut data, &mut next).await.map_err(DimseError::ReadFile)? } else { 0 };
            let last = next_filled == 0;
            self.send_data(context_id, &current[..filled], last).await?;
            if last {
                return Ok(None);
            }
            current = next;
            filled = next_filled;
        }
    }
}

pub(crate) async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, std::io::Error> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..]).await?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

impl Responder<'_> {
    /// The accepted presentation context on which a C-STORE sub-operation of `sop_class` in
    /// `transfer_syntax` may go to the requester: one for that class and syntax, whose class
    /// the requester took the SCP role for (PS3.7 §D.3.3.4, PS3.4 §C.4.3.3).
    pub fn store_context(&self, sop_class: &str, transfer_syntax: &str) -> Option<u8> {
        if !self.assoc.peer_is_scp(sop_class) {
            return None;
        }
        self.assoc.find_context(sop_class, Some(transfer_syntax)).map(|c| c.id)
    }

    /// Sends a C-STORE-RQ sub-operation on `context_id` with the data set streamed from
    /// `data` and waits for its C-STORE-RSP. A C-CANCEL-RQ for the operation being served that
    /// arrives meanwhile is kept for [`Responder::cancelled`]. An `Err` means the association
    /// can carry nothing more: the toolkit aborts it once the handler returns.
    pub async fn store<R: AsyncRead + Unpin>(
        &mut self,
        context_id: u8,
        sop_class: &str,
        sop_instance: &str,
        data: R,
    ) -> Result<SubStoreOutcome, DimseError> {
        let r = self.store_inner(context_id, sop_class, sop_instance, data).await;
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    async fn store_inner<R: AsyncRead + Unpin>(
        &mut self,
        context_id: u8,
        sop_class: &str,
        sop_instance: &str,
        data: R,
    ) -> Result<SubStoreOutcome, DimseError> {
        let message_id = self.assoc.next_message_id();
        let rq = Command::store_rq(message_id, sop_class, sop_instance);
        if let Some(e) = self.assoc.send_streamed(context_id, &rq, data).await? {
            return Ok(SubStoreOutcome::SourceFailed(e));
        }
        loop {
            match self.assoc.receive_command().await? {
                Incoming::Command { command, .. }
                    if command.field == CommandField::C_STORE_RSP && command.message_id_being_responded_to == Some(message_id) =>
                {
                    self.assoc.drain_data().await?;
                    return Ok(SubStoreOutcome::Response(command));
                }
                Incoming::Command { command, .. } if command.field == CommandField::C_CANCEL_RQ => {
                    if let (Some(id), Some(ours)) = (command.message_id_being_responded_to, self.request.message_id) {
                        if id == ours {
                            self.assoc.note_cancel(id);
                        }
                    }
                }
                Incoming::Command { command, .. } => {
                    return Err(DimseError::UnexpectedResponse { expected: CommandField::C_STORE_RSP.0, got: command.field.0 });
                }
                Incoming::ReleaseRequested => return Err(DimseError::Released { step: "waiting for a C-STORE-RSP" }),
                Incoming::Aborted => return Err(DimseError::Aborted),
                Incoming::Closed => return Err(DimseError::Closed),
            }
        }
    }
}
