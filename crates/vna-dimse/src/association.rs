//! An established association (either side) and DIMSE message assembly over it (PS3.7 §6.3,
//! PS3.8 §9.3.5): a command is read whole (small, buffered), a data set is handed out as the
//! P-DATA values arrive, and outgoing messages are split to the peer's maximum PDU length.
//!
//! A reader task reads PDUs from the socket into a small bounded channel, so memory per
//! association is a few PDUs whatever the data set size, and a pending C-CANCEL can be noticed
//! without blocking ([`Association::poll_cancel`]).

use crate::command::{Command, CommandField};
use crate::error::DimseError;
use crate::wire;
use bytes::Bytes;
use dicom_ul::pdu::{AbortRQSource, PDataValue, PDataValueType, Pdu};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Largest command set accepted: commands are a few hundred bytes (PS3.7 Annex E).
const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// PDUs read ahead of the consumer: enough to overlap network and disk, bounded memory.
const READ_AHEAD_PDUS: usize = 2;
/// Largest PDU we send when the peer declares no limit (maximum length 0, PS3.8 §D.1).
const SEND_CAP: u32 = 1 << 20;

/// An accepted presentation context (PS3.8 §9.3.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentationContext {
    pub id: u8,
    pub abstract_syntax: String,
    pub transfer_syntax: String,
}

/// Timeouts of an association; `None` waits forever.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Waiting for the next PDU inside a message.
    pub read: Option<Duration>,
    /// Waiting for the next message between messages.
    pub idle: Option<Duration>,
    /// Writing one PDU.
    pub write: Option<Duration>,
}

/// What arrived when a command was expected.
#[derive(Debug)]
pub enum Incoming {
    Command {
        context_id: u8,
        command: Box<Command>,
    },
    /// A-RELEASE-RQ (to be answered with [`Association::release_response`]).
    ReleaseRequested,
    Aborted,
    Closed,
}

enum Event {
    Pdv(PDataValue),
    ReleaseRq,
    ReleaseRp,
    Aborted,
    Closed,
}

/// One association after A-ASSOCIATE-AC, on either side.
pub struct Association {
    rx: mpsc::Receiver<Result<Pdu, DimseError>>,
    reader: tokio::task::JoinHandle<()>,
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    write_buf: Vec<u8>,
    pending: VecDeque<PDataValue>,
    /// Longest PDU we may send (the peer's Maximum Length, PS3.8 §D.1).
    send_max: u32,
    contexts: Vec<PresentationContext>,
    peer_ae: String,
    peer_addr: Option<SocketAddr>,
    timeouts: Timeouts,
    /// A data set is being received and its last fragment has not arrived yet.
    data_open: bool,
    /// A command read by `poll_cancel` that was not a C-CANCEL, kept for `receive_command`.
    stashed: Option<Incoming>,
    /// The fragments of a command read so far, and its context: kept here so that
    /// `receive_command` can be cancelled between fragments and resumed (the server awaits
    /// it beside the replies of stores still committing).
    command_partial: Vec<u8>,
    command_context: Option<u8>,
    cancel_partial: Vec<u8>,
    /// A C-CANCEL-RQ read while waiting for something else (a C-STORE-RSP of a C-GET
    /// sub-operation), for the next [`Self::poll_cancel`].
    cancel_noted: Option<u16>,
    /// SOP classes for which the peer accepted the SCP role (PS3.7 §D.3.3.4), so that we may
    /// send it C-STORE sub-operations of a C-GET.
    peer_scp_classes: Vec<String>,
    /// Message IDs of requests this side sends (C-STORE sub-operations of a C-GET).
    next_message_id: u16,
}

impl Association {
    /// Wraps a socket on which the association was just accepted or established.
    pub(crate) fn new(
        socket: crate::transport::Connection,
        leftover: Bytes,
        recv_max: u32,
        peer_max: u32,
        contexts: Vec<PresentationContext>,
        peer_ae: String,
        timeouts: Timeouts,
    ) -> Association {
        let peer_addr = socket.tcp().peer_addr().ok();
        let (read_half, writer) = socket.split();
        let (tx, rx) = mpsc::channel(READ_AHEAD_PDUS);
        let reader = tokio::spawn(wire::read_loop(read_half, leftover, recv_max, tx));
        let send_max = if peer_max == 0 { SEND_CAP } else { peer_max.clamp(dicom_ul::pdu::MINIMUM_PDU_SIZE, SEND_CAP) };
        Association {
            rx,
            reader,
            writer,
            write_buf: Vec::new(),
            pending: VecDeque::new(),
            send_max,
            contexts,
            peer_ae,
            peer_addr,
            timeouts,
            data_open: false,
            stashed: None,
            command_partial: Vec::new(),
            command_context: None,
            cancel_partial: Vec::new(),
            cancel_noted: None,
            peer_scp_classes: Vec::new(),
            next_message_id: 1,
        }
    }

    /// Records the SOP classes for which the peer takes the SCP role (role selection).
    pub(crate) fn with_peer_scp_classes(mut self, classes: Vec<String>) -> Association {
        self.peer_scp_classes = classes;
        self
    }

    /// True when role selection made the peer an SCP of `sop_class` (PS3.7 §D.3.3.4).
    pub fn peer_is_scp(&self, sop_class: &str) -> bool {
        self.peer_scp_classes.iter().any(|c| c == sop_class)
    }

    /// A Message ID for a request sent by this side.
    pub fn next_message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        id
    }

    /// Remembers a C-CANCEL-RQ for `message_id` that arrived while another response was
    /// awaited; the next [`Self::poll_cancel`] for it reports it.
    pub(crate) fn note_cancel(&mut self, message_id: u16) {
        self.cancel_noted = Some(message_id);
    }

    pub fn contexts(&self) -> &[PresentationContext] {
        &self.contexts
    }

    pub fn context(&self, id: u8) -> Option<&PresentationContext> {
        self.contexts.iter().find(|c| c.id == id)
    }

    /// The first accepted context for this abstract syntax and transfer syntax.
    pub fn find_context(&self, abstract_syntax: &str, transfer_syntax: Option<&str>) -> Option<&PresentationContext> {
        self.contexts.iter().find(|c| c.abstract_syntax == abstract_syntax && transfer_syntax.is_none_or(|ts| c.transfer_syntax == ts))
    }

    pub fn peer_ae(&self) -> &str {
        &self.peer_ae
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// Longest PDU this side sends.
    pub fn send_max_pdu(&self) -> u32 {
        self.send_max
    }

    async fn next_event(&mut self, timeout: Option<Duration>, step: &'static str) -> Result<Event, DimseError> {
        if let Some(pdv) = self.pending.pop_front() {
            return Ok(Event::Pdv(pdv));
        }
        let next = match timeout {
            Some(t) => tokio::time::timeout(t, self.rx.recv()).await.map_err(|_| DimseError::Timeout { step })?,
            None => self.rx.recv().await,
        };
        Ok(match next {
            None => Event::Closed,
            Some(Err(e)) => return Err(e),
            Some(Ok(pdu)) => self.classify(pdu)?,
        })
    }

    fn classify(&mut self, pdu: Pdu) -> Result<Event, DimseError> {
        Ok(match pdu {
            Pdu::PData { data } => {
                self.pending.extend(data);
                match self.pending.pop_front() {
                    Some(pdv) => Event::Pdv(pdv),
                    None => return Err(DimseError::UnexpectedPdu { what: "empty P-DATA-TF" }),
                }
            }
            Pdu::ReleaseRQ => Event::ReleaseRq,
            Pdu::ReleaseRP => Event::ReleaseRp,
            Pdu::AbortRQ { .. } => Event::Aborted,
            Pdu::AssociationRQ(_) => return Err(DimseError::UnexpectedPdu { what: "A-ASSOCIATE-RQ on an established association" }),
            Pdu::AssociationAC(_) => return Err(DimseError::UnexpectedPdu { what: "A-ASSOCIATE-AC on an established association" }),
            Pdu::AssociationRJ(_) => return Err(DimseError::UnexpectedPdu { what: "A-ASSOCIATE-RJ on an established association" }),
            Pdu::Unknown { .. } => return Err(DimseError::UnexpectedPdu { what: "unknown PDU type" }),
        })
    }

    /// Reads the next command (PS3.7 §6.3.1: command fragments until the last one).
    /// Cancel-safe: fragments already read are kept for the next call.
    pub async fn receive_command(&mut self) -> Result<Incoming, DimseError> {
        if let Some(stashed) = self.stashed.take() {
            return Ok(stashed);
        }
        if self.data_open {
            return Err(DimseError::UnexpectedPdu { what: "command requested before the data set ended" });
        }
        loop {
            let timeout =
                if self.command_partial.is_empty() && self.command_context.is_none() { self.timeouts.idle } else { self.timeouts.read };
            match self.next_event(timeout, "waiting for a command").await? {
                Event::Pdv(pdv) => {
                    if pdv.value_type != PDataValueType::Command {
                        return Err(DimseError::UnexpectedPdu { what: "data set fragment where a command was expected" });
                    }
                    if self.context(pdv.presentation_context_id).is_none() {
                        return Err(DimseError::UnknownPresentationContext { id: pdv.presentation_context_id });
                    }
                    self.command_context = Some(pdv.presentation_context_id);
                    if self.command_partial.len() + pdv.data.len() > MAX_COMMAND_BYTES {
                        return Err(DimseError::CommandTooLarge { limit: MAX_COMMAND_BYTES });
                    }
                    self.command_partial.extend_from_slice(&pdv.data);
                    if pdv.is_last {
                        let buf = std::mem::take(&mut self.command_partial);
                        self.command_context = None;
                        let command = Command::decode(&buf).map_err(DimseError::Command)?;
                        self.data_open = command.has_data_set();
                        return Ok(Incoming::Command { context_id: pdv.presentation_context_id, command: Box::new(command) });
                    }
                }
                Event::ReleaseRq => return Ok(Incoming::ReleaseRequested),
                Event::ReleaseRp => return Err(DimseError::UnexpectedPdu { what: "A-RELEASE-RP without a request" }),
                Event::Aborted => return Ok(Incoming::Aborted),
                Event::Closed => return Ok(Incoming::Closed),
            }
        }
    }

    /// The next fragment of the data set that follows the last command, `None` after the last
    /// fragment (PS3.8 §E.2: the "last fragment" bit of the message control header).
    pub async fn receive_data(&mut self) -> Result<Option<Bytes>, DimseError> {
        if !self.data_open {
            return Ok(None);
        }
        match self.next_event(self.timeouts.read, "receiving a data set").await? {
            Event::Pdv(pdv) => {
                if pdv.value_type != PDataValueType::Data {
                    return Err(DimseError::UnexpectedPdu { what: "command fragment inside a data set" });
                }
                if pdv.is_last {
                    self.data_open = false;
                }
                Ok(Some(Bytes::from(pdv.data)))
            }
            Event::Aborted => Err(DimseError::Aborted),
            Event::Closed => Err(DimseError::Closed),
            Event::ReleaseRq | Event::ReleaseRp => Err(DimseError::Released { step: "receiving a data set" }),
        }
    }

    /// Reads the whole data set of the last command, for small ones (identifiers).
    pub async fn receive_data_set(&mut self, limit: usize) -> Result<Vec<u8>, DimseError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.receive_data().await? {
            if out.len() + chunk.len() > limit {
                self.drain_data().await?;
                return Err(DimseError::DataSetTooLarge { limit });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Discards the rest of the current data set.
    pub async fn drain_data(&mut self) -> Result<(), DimseError> {
        while self.receive_data().await?.is_some() {}
        Ok(())
    }

    /// Checks, without waiting, whether the peer sent a C-CANCEL-RQ for `message_id` (PS3.7
    /// §9.3.2.3). Another command that arrives meanwhile is kept for [`Self::receive_command`].
    pub fn poll_cancel(&mut self, message_id: u16) -> bool {
        if self.cancel_noted == Some(message_id) {
            self.cancel_noted = None;
            return true;
        }
        loop {
            if self.stashed.is_some() {
                return matches!(self.stashed, Some(Incoming::Aborted | Incoming::Closed));
            }
            let event = match self.pending.pop_front() {
                Some(pdv) => Event::Pdv(pdv),
                None => match self.rx.try_recv() {
                    Ok(Ok(pdu)) => match self.classify(pdu) {
                        Ok(e) => e,
                        Err(_) => Event::Aborted,
                    },
                    Ok(Err(_)) | Err(mpsc::error::TryRecvError::Disconnected) => Event::Closed,
                    Err(mpsc::error::TryRecvError::Empty) => return false,
                },
            };
            match event {
                Event::Pdv(pdv) if pdv.value_type == PDataValueType::Command => {
                    self.cancel_partial.extend_from_slice(&pdv.data);
                    if self.cancel_partial.len() > MAX_COMMAND_BYTES {
                        self.stashed = Some(Incoming::Aborted);
                        continue;
                    }
                    if pdv.is_last {
                        let bytes = std::mem::take(&mut self.cancel_partial);
                        match Command::decode(&bytes) {
                            Ok(c) if c.field == CommandField::C_CANCEL_RQ => {
                                if c.message_id_being_responded_to == Some(message_id) {
                                    return true;
                                }
                            }
                            Ok(command) => {
                                self.data_open = command.has_data_set();
                                self.stashed =
                                    Some(Incoming::Command { context_id: pdv.presentation_context_id, command: Box::new(command) });
                            }
                            Err(_) => self.stashed = Some(Incoming::Aborted),
                        }
                    }
                }
                Event::Pdv(_) => self.stashed = Some(Incoming::Aborted),
                Event::ReleaseRq => self.stashed = Some(Incoming::ReleaseRequested),
                Event::ReleaseRp | Event::Aborted => self.stashed = Some(Incoming::Aborted),
                Event::Closed => self.stashed = Some(Incoming::Closed),
            }
        }
    }

    /// Puts back what [`Self::receive_command`] returned while something else was awaited (a
    /// new request while waiting for the response to our own), for the next call. `false`
    /// when something is already waiting; it is kept and `incoming` dropped.
    pub(crate) fn unread(&mut self, incoming: Incoming) -> bool {
        if self.stashed.is_some() {
            return false;
        }
        self.stashed = Some(incoming);
        true
    }

    /// Whether the peer asked to release, aborted or closed, as far as what has already
    /// arrived tells (never waits). A command that arrived meanwhile is kept.
    pub(crate) fn peer_leaving(&mut self) -> bool {
        // `poll_cancel` reads what is there into `stashed`; a C-CANCEL can match no operation.
        self.poll_cancel(0);
        matches!(self.stashed, Some(Incoming::ReleaseRequested | Incoming::Aborted | Incoming::Closed))
    }

    async fn write_raw(&mut self, step: &'static str) -> Result<(), DimseError> {
        // A TLS stream may keep records back until flushed; on TCP the flush is nothing.
        let fut = async {
            self.writer.write_all(&self.write_buf).await?;
            self.writer.flush().await
        };
        match self.timeouts.write {
            Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| DimseError::Timeout { step })?,
            None => fut.await,
        }
        .map_err(DimseError::WritePdu)
    }

    /// Sends one P-DATA-TF per fragment, each at most the peer's maximum PDU length
    /// (PS3.8 §9.3.5: PDU header 6 bytes, PDV header 6 bytes).
    async fn send_pdvs(&mut self, context_id: u8, command: bool, data: &[u8], last: bool) -> Result<(), DimseError> {
        let max_fragment = (self.send_max - 6) as usize;
        let mut chunks = data.chunks(max_fragment).peekable();
        if data.is_empty() {
            wire::encode_pdata(&mut self.write_buf, context_id, command, last, &[]);
            return self.write_raw("sending P-DATA").await;
        }
        while let Some(chunk) = chunks.next() {
            let is_last = last && chunks.peek().is_none();
            wire::encode_pdata(&mut self.write_buf, context_id, command, is_last, chunk);
            self.write_raw("sending P-DATA").await?;
        }
        Ok(())
    }

    /// Sends a command set.
    pub async fn send_command(&mut self, context_id: u8, command: &Command) -> Result<(), DimseError> {
        let bytes = command.encode();
        self.send_pdvs(context_id, true, &bytes, true).await
    }

    /// Sends data set bytes; `last` marks the final fragment of the data set.
    pub async fn send_data(&mut self, context_id: u8, data: &[u8], last: bool) -> Result<(), DimseError> {
        self.send_pdvs(context_id, false, data, last).await
    }

    /// Largest data fragment that fits in one PDU to the peer.
    pub fn max_fragment(&self) -> usize {
        (self.send_max - 6) as usize
    }

    /// A command and its (small) data set.
    pub async fn send_message(&mut self, context_id: u8, command: &Command, data: Option<&[u8]>) -> Result<(), DimseError> {
        self.send_command(context_id, command).await?;
        if let Some(d) = data {
            self.send_data(context_id, d, true).await?;
        }
        Ok(())
    }

    async fn send_pdu(&mut self, pdu: &Pdu, step: &'static str) -> Result<(), DimseError> {
        self.write_buf.clear();
        dicom_ul::pdu::write_pdu(&mut self.write_buf, pdu).map_err(DimseError::EncodePdu)?;
        self.write_raw(step).await
    }

    /// Answers an A-RELEASE-RQ and closes (PS3.8 §7.2).
    pub async fn release_response(mut self) -> Result<(), DimseError> {
        self.send_pdu(&Pdu::ReleaseRP, "sending A-RELEASE-RP").await?;
        let _ = self.writer.shutdown().await;
        Ok(())
    }

    /// Requests release and waits for the answer (PS3.8 §7.2).
    pub async fn release(mut self) -> Result<(), DimseError> {
        self.send_pdu(&Pdu::ReleaseRQ, "sending A-RELEASE-RQ").await?;
        loop {
            match self.next_event(self.timeouts.read, "waiting for A-RELEASE-RP").await? {
                Event::ReleaseRp | Event::Closed => break,
                Event::Aborted => return Err(DimseError::Aborted),
                // Late fragments of an earlier message, or a release collision: keep waiting.
                Event::Pdv(_) | Event::ReleaseRq => {}
            }
        }
        let _ = self.writer.shutdown().await;
        Ok(())
    }

    /// Sends A-ABORT and closes (PS3.8 §7.3); `provider` says which side is the source.
    pub async fn abort(mut self, provider: bool) {
        let source = if provider {
            AbortRQSource::ServiceProvider(dicom_ul::pdu::AbortRQServiceProviderReason::ReasonNotSpecified)
        } else {
            AbortRQSource::ServiceUser
        };
        let _ = self.send_pdu(&Pdu::AbortRQ { source }, "sending A-ABORT").await;
        let _ = self.writer.shutdown().await;
    }
}

impl Drop for Association {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
