//! The SCU side: request an association (PS3.8 §7.1) and run C-ECHO, C-STORE (streamed from a
//! file or any reader, never held whole) and C-FIND over it. Used by the tests, the load
//! generator and, later, migration from legacy archives.

use crate::association::{Association, Incoming, PresentationContext, Timeouts};
use crate::command::{Command, CommandField};
use crate::error::DimseError;
use crate::negotiate::{APPLICATION_CONTEXT, ASYNC_WINDOW_ITEM, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use crate::status::Status;
use crate::transport::{ClientTls, Connection};
use crate::wire;
use bytes::BytesMut;
use dicom_ul::pdu::{AssociationRQ, Pdu, PresentationContextProposed, PresentationContextResultReason, RequestorRoles, UserVariableItem};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A presentation context to propose.
#[derive(Debug, Clone)]
pub struct ProposedContext {
    pub abstract_syntax: String,
    pub transfer_syntaxes: Vec<String>,
}

impl ProposedContext {
    pub fn new(abstract_syntax: &str, transfer_syntaxes: &[&str]) -> ProposedContext {
        ProposedContext {
            abstract_syntax: abstract_syntax.to_owned(),
            transfer_syntaxes: transfer_syntaxes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Options of a client association.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub max_pdu_length: u32,
    pub timeouts: Timeouts,
    /// Speak TLS to the peer (PS3.15 Annex B); `None`: plain TCP.
    pub tls: Option<ClientTls>,
    /// Operations to invoke without waiting for their responses, proposed in an Asynchronous
    /// Operations Window sub-item (PS3.7 §D.3.3.3) when over 1; the peer's answer is
    /// [`Client::window`].
    pub window: u16,
}

impl Default for ClientOptions {
    fn default() -> Self {
        let t = Some(Duration::from_secs(60));
        ClientOptions { max_pdu_length: 65536, timeouts: Timeouts { read: t, idle: t, write: t }, tls: None, window: 1 }
    }
}

/// An association requested by us.
pub struct Client {
    assoc: Association,
    next_message_id: u16,
    window: u16,
}

impl Client {
    /// Connects and negotiates with default options.
    pub async fn connect(addr: &str, calling: &str, called: &str, contexts: &[ProposedContext]) -> Result<Client, DimseError> {
        Client::connect_with(addr, calling, called, contexts, ClientOptions::default()).await
    }

    pub async fn connect_with(
        addr: &str,
        calling: &str,
        called: &str,
        contexts: &[ProposedContext],
        options: ClientOptions,
    ) -> Result<Client, DimseError> {
        Client::connect_with_roles(addr, calling, called, contexts, &[], options).await
    }

    /// Connects proposing, for each of `scp_roles` (storage SOP classes), SCP/SCU Role
    /// Selection with us as SCP only (PS3.7 §D.3.3.4): what a C-GET requester needs to receive
    /// the C-STORE sub-operations (PS3.4 §C.4.3).
    pub async fn connect_with_roles(
        addr: &str,
        calling: &str,
        called: &str,
        contexts: &[ProposedContext],
        scp_roles: &[&str],
        options: ClientOptions,
    ) -> Result<Client, DimseError> {
        let tcp = TcpStream::connect(addr).await.map_err(|source| DimseError::Connect { addr: addr.to_owned(), source })?;
        let _ = tcp.set_nodelay(true);
        let mut socket = match &options.tls {
            None => Connection::Tcp(tcp),
            Some(tls) => {
                let host = crate::transport::host_of(addr);
                let deadline = options.timeouts.read.unwrap_or(Duration::from_secs(60));
                Connection::connect_tls(tcp, tls, host, deadline).await?
            }
        };
        let proposed: Vec<PresentationContextProposed> = contexts
            .iter()
            .enumerate()
            .map(|(i, c)| PresentationContextProposed {
                id: (2 * i + 1) as u8,
                abstract_syntax: c.abstract_syntax.clone(),
                transfer_syntaxes: c.transfer_syntaxes.clone(),
            })
            .collect();
        let rq = AssociationRQ {
            protocol_version: 1,
            calling_ae_title: calling.to_owned(),
            called_ae_title: called.to_owned(),
            application_context_name: APPLICATION_CONTEXT.to_owned(),
            presentation_contexts: proposed.clone(),
            user_variables: vec![
                UserVariableItem::MaxLength(options.max_pdu_length),
                UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.to_owned()),
                UserVariableItem::ImplementationVersionName(IMPLEMENTATION_VERSION_NAME.to_owned()),
            ]
            .into_iter()
            .chain(
                scp_roles
                    .iter()
                    .map(|c| UserVariableItem::ScuScpRoleSelectionSubItem((*c).to_owned(), RequestorRoles { scu: false, scp: true })),
            )
            .chain((options.window > 1).then(|| {
                let [hi, lo] = options.window.to_be_bytes();
                // Invoked: `window`; performed: 1 (we perform nothing asynchronously).
                UserVariableItem::Unknown(ASYNC_WINDOW_ITEM, vec![hi, lo, 0, 1])
            }))
            .collect(),
        };
        socket.write_all(&wire::encode(&Pdu::AssociationRQ(rq))?).await.map_err(DimseError::WritePdu)?;
        let mut buf = BytesMut::new();
        let read = wire::read_pdu(&mut socket, &mut buf, options.max_pdu_length);
        let answer = match options.timeouts.read {
            Some(t) => tokio::time::timeout(t, read).await.map_err(|_| DimseError::Timeout { step: "waiting for A-ASSOCIATE-AC" })?,
            None => read.await,
        }?;
        let ac = match answer {
            Some(Pdu::AssociationAC(ac)) => ac,
            Some(Pdu::AssociationRJ(rj)) => return Err(DimseError::Rejected(rj)),
            Some(Pdu::AbortRQ { .. }) => return Err(DimseError::Aborted),
            Some(_) => return Err(DimseError::UnexpectedPdu { what: "answer to A-ASSOCIATE-RQ" }),
            None => return Err(DimseError::Closed),
        };
        let mut peer_max = dicom_ul::pdu::DEFAULT_MAX_PDU;
        let mut window = 1;
        for item in &ac.user_variables {
            match item {
                UserVariableItem::MaxLength(l) => peer_max = *l,
                // What the peer performs at once (0: no limit), never more than we proposed.
                UserVariableItem::Unknown(ASYNC_WINDOW_ITEM, v) if v.len() == 4 && options.window > 1 => {
                    let performed = u16::from_be_bytes([v[2], v[3]]);
                    window = if performed == 0 { options.window } else { performed.min(options.window) };
                }
                _ => {}
            }
        }
        let accepted = ac
            .presentation_contexts
            .iter()
            .filter(|r| r.reason == PresentationContextResultReason::Acceptance)
            .filter_map(|r| {
                let p = proposed.iter().find(|p| p.id == r.id)?;
                Some(PresentationContext {
                    id: r.id,
                    abstract_syntax: p.abstract_syntax.clone(),
                    transfer_syntax: r.transfer_syntax.clone(),
                })
            })
            .collect();
        let assoc = Association::new(socket, buf.freeze(), options.max_pdu_length, peer_max, accepted, called.to_owned(), options.timeouts);
        Ok(Client { assoc, next_message_id: 1, window })
    }

    /// How many operations the peer agreed to have outstanding at once (1 without a window).
    pub fn window(&self) -> u16 {
        self.window
    }

    /// The association, for exchanges this type has no method for.
    pub fn association(&mut self) -> &mut Association {
        &mut self.assoc
    }

    pub fn next_message_id(&mut self) -> u16 {
        let id = self.next_message_id;
        self.next_message_id = self.next_message_id.wrapping_add(1).max(1);
        id
    }

    fn context_for(&self, abstract_syntax: &str, transfer_syntax: Option<&str>) -> Result<u8, DimseError> {
        self.assoc.find_context(abstract_syntax, transfer_syntax).map(|c| c.id).ok_or_else(|| DimseError::NoPresentationContext {
            abstract_syntax: abstract_syntax.to_owned(),
            transfer_syntax: transfer_syntax.unwrap_or("any").to_owned(),
        })
    }

    /// Waits for the response to `request`, skipping nothing: anything else is an error.
    pub async fn response(&mut self, request: CommandField) -> Result<Command, DimseError> {
        match self.assoc.receive_command().await? {
            Incoming::Command { command, .. } if command.field == request.response() => Ok(*command),
            Incoming::Command { command, .. } => {
                Err(DimseError::UnexpectedResponse { expected: request.response().0, got: command.field.0 })
            }
            Incoming::Aborted => Err(DimseError::Aborted),
            Incoming::Closed => Err(DimseError::Closed),
            Incoming::ReleaseRequested => Err(DimseError::Released { step: "waiting for a response" }),
        }
    }

    /// C-ECHO (PS3.7 §9.1.5).
    pub async fn echo(&mut self) -> Result<Status, DimseError> {
        let id = self.context_for(crate::VERIFICATION, None)?;
        let rq = Command::echo_rq(self.next_message_id());
        self.assoc.send_command(id, &rq).await?;
        let rsp = self.response(CommandField::C_ECHO_RQ).await?;
        self.assoc.drain_data().await?;
        Ok(rsp.status.unwrap_or(Status::PROCESSING_FAILURE))
    }

    /// C-STORE of a data set read from `data` (PS3.7 §9.1.1), in the given transfer syntax.
    /// Returns the C-STORE-RSP.
    pub async fn store<R: AsyncRead + Unpin>(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        transfer_syntax: &str,
        data: R,
    ) -> Result<Command, DimseError> {
        self.send_store(sop_class, sop_instance, transfer_syntax, data).await?;
        self.store_response().await
    }

    /// Sends a C-STORE-RQ and its data set without waiting for the response (within the
    /// negotiated [`Client::window`]); returns its Message ID. [`Client::store_response`]
    /// reads the responses, in the order the peer sends them.
    pub async fn send_store<R: AsyncRead + Unpin>(
        &mut self,
        sop_class: &str,
        sop_instance: &str,
        transfer_syntax: &str,
        data: R,
    ) -> Result<u16, DimseError> {
        let id = self.context_for(sop_class, Some(transfer_syntax))?;
        let message_id = self.next_message_id();
        let rq = Command::store_rq(message_id, sop_class, sop_instance);
        self.assoc.send_command(id, &rq).await?;
        self.send_stream(id, data).await?;
        Ok(message_id)
    }

    /// The next C-STORE-RSP (its Message ID Being Responded To names the request).
    pub async fn store_response(&mut self) -> Result<Command, DimseError> {
        let rsp = self.response(CommandField::C_STORE_RQ).await?;
        self.assoc.drain_data().await?;
        Ok(rsp)
    }

    /// Streams `data` as data set fragments; the last fragment is flagged once the reader ends
    /// (one fragment is read ahead to know which one is last).
    async fn send_stream<R: AsyncRead + Unpin>(&mut self, context_id: u8, mut data: R) -> Result<(), DimseError> {
        let size = self.assoc.max_fragment();
        let mut current = vec![0u8; size];
        let mut filled = fill(&mut data, &mut current).await?;
        loop {
            let mut next = vec![0u8; size];
            let next_filled = if filled == size { fill(&mut data, &mut next).await? } else { 0 };
            let last = next_filled == 0;
            self.assoc.send_data(context_id, &current[..filled], last).await?;
            if last {
                return Ok(());
            }
            current = next;
            filled = next_filled;
        }
    }

    /// C-STORE of a Part 10 file: the meta group says the SOP class, instance and transfer
    /// syntax; the data set after it is streamed from disk.
    pub async fn store_file(&mut self, path: &Path) -> Result<Command, DimseError> {
        let mut file = tokio::fs::File::open(path).await.map_err(DimseError::ReadFile)?;
        let meta = read_meta(&mut file).await?;
        file.seek(std::io::SeekFrom::Start(meta.data_set_offset)).await.map_err(DimseError::ReadFile)?;
        self.store(&meta.sop_class, &meta.sop_instance, &meta.transfer_syntax, file).await
    }

    /// C-FIND (PS3.7 §9.1.2): the identifiers of every pending response (raw data sets in the
    /// context's transfer syntax) and the final response.
    pub async fn find(&mut self, model: &str, identifier: &[u8]) -> Result<(Vec<Vec<u8>>, Command), DimseError> {
        let id = self.context_for(model, None)?;
        let rq = Command::find_rq(self.next_message_id(), model);
        self.assoc.send_message(id, &rq, Some(identifier)).await?;
        let mut matches = Vec::new();
        loop {
            let rsp = self.response(CommandField::C_FIND_RQ).await?;
            let data = if rsp.has_data_set() { Some(self.assoc.receive_data_set(16 << 20).await?) } else { None };
            match rsp.status {
                Some(s) if s.is_pending() => matches.extend(data),
                _ => return Ok((matches, rsp)),
            }
        }
    }

    /// A-RELEASE (PS3.8 §7.2).
    pub async fn release(self) -> Result<(), DimseError> {
        self.assoc.release().await
    }

    /// A-ABORT from the service user (PS3.8 §7.3).
    pub async fn abort(self) {
        self.assoc.abort(false).await
    }
}

async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, DimseError> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..]).await.map_err(DimseError::ReadFile)?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// What the file meta group (PS3.10 §7.1) says about a Part 10 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub sop_class: String,
    pub sop_instance: String,
    pub transfer_syntax: String,
    pub data_set_offset: u64,
}

/// Reads the meta group of a Part 10 file (explicit VR little endian, PS3.10 §7.1) and leaves
/// the reader after it.
pub async fn read_meta<R: AsyncRead + Unpin>(r: &mut R) -> Result<FileMeta, DimseError> {
    let mut head = [0u8; 144];
    r.read_exact(&mut head).await.map_err(|_| DimseError::NotPart10 { why: "shorter than a preamble and meta group" })?;
    if &head[128..132] != b"DICM" {
        return Err(DimseError::NotPart10 { why: "no DICM prefix" });
    }
    if head[132..136] != [2, 0, 0, 0] || &head[136..138] != b"UL" {
        return Err(DimseError::NotPart10 { why: "the meta group does not start with its group length" });
    }
    let group_len = u32::from_le_bytes([head[140], head[141], head[142], head[143]]) as usize;
    if group_len > 1 << 20 {
        return Err(DimseError::NotPart10 { why: "the meta group is implausibly large" });
    }
    let mut group = vec![0u8; group_len];
    r.read_exact(&mut group).await.map_err(|_| DimseError::NotPart10 { why: "the meta group is truncated" })?;
    let (mut class, mut instance, mut ts) = (None, None, None);
    let mut pos = 0;
    while pos + 8 <= group.len() {
        let element = u16::from_le_bytes([group[pos + 2], group[pos + 3]]);
        let vr = &group[pos + 4..pos + 6];
        let (len, header) = if matches!(vr, b"OB" | b"OW" | b"UN" | b"SQ" | b"UT" | b"UC" | b"UR") {
            let Some(l) = group.get(pos + 8..pos + 12) else { break };
            (u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize, 12)
        } else {
            (u16::from_le_bytes([group[pos + 6], group[pos + 7]]) as usize, 8)
        };
        let Some(value) = group.get(pos + header..pos + header + len) else {
            return Err(DimseError::NotPart10 { why: "a meta element runs past the group" });
        };
        let text = || String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).to_owned();
        match element {
            0x0002 => class = Some(text()),
            0x0003 => instance = Some(text()),
            0x0010 => ts = Some(text()),
            _ => {}
        }
        pos += header + len;
    }
    match (class, instance, ts) {
        (Some(sop_class), Some(sop_instance), Some(transfer_syntax)) => {
            Ok(FileMeta { sop_class, sop_instance, transfer_syntax, data_set_offset: 144 + group_len as u64 })
        }
        _ => Err(DimseError::NotPart10 { why: "the meta group lacks the SOP class, instance or transfer syntax" }),
    }
}
