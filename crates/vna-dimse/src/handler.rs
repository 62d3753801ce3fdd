//! The service-provider side of DIMSE as a trait: what an SCP built on this toolkit implements.
//! C-ECHO is answered by the toolkit; every other operation defaults to "unrecognized
//! operation" (PS3.7 Annex C, 0x0211) so an SCP grows one service at a time.

use crate::association::Association;
use crate::command::Command;
use crate::error::DimseError;
use crate::negotiate::{is_storage_class, VERIFICATION};
use crate::status::Status;
use async_trait::async_trait;
use bytes::Bytes;
use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

/// Who is on the other side of an association.
#[derive(Debug, Clone)]
pub struct AssociationInfo {
    pub calling_ae: String,
    pub called_ae: String,
    pub peer_addr: Option<SocketAddr>,
    /// `None` on plain TCP; over TLS, the peer's verified certificate if it sent one.
    pub tls: Option<crate::transport::TlsPeer>,
    /// The User Identity sub-item of the A-ASSOCIATE-RQ (PS3.7 §D.3.3.7), if the peer sent one.
    pub user_identity: Option<UserIdentity>,
    /// What [`Handler::authenticate`] made of the association's identity, for its operations.
    pub session: Session,
}

/// The identity a requestor asserts in its A-ASSOCIATE-RQ (PS3.7 §D.3.3.7.1, Table D.3-14).
#[derive(Clone, PartialEq, Eq)]
pub struct UserIdentity {
    /// User-Identity-Type: 1 username, 2 username and passcode, 3 Kerberos service ticket,
    /// 4 SAML assertion, 5 JSON Web Token.
    pub kind: u8,
    pub positive_response_requested: bool,
    pub primary: Vec<u8>,
    /// The passcode of type 2; empty otherwise.
    pub secondary: Vec<u8>,
}

impl UserIdentity {
    pub const USERNAME: u8 = 1;
    pub const USERNAME_PASSCODE: u8 = 2;
    pub const JWT: u8 = 5;
}

/// Credentials never reach a log: only the type and the lengths.
impl std::fmt::Debug for UserIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserIdentity")
            .field("kind", &self.kind)
            .field("positive_response_requested", &self.positive_response_requested)
            .field("primary_len", &self.primary.len())
            .field("secondary_len", &self.secondary.len())
            .finish()
    }
}

/// Whatever the handler keeps about an association's authenticated identity (opaque here).
#[derive(Clone, Default)]
pub struct Session(pub Option<Arc<dyn Any + Send + Sync>>);

impl Session {
    /// The kept value, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref().and_then(|v| v.downcast_ref())
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Session(..)" } else { "Session(None)" })
    }
}

/// The handler's verdict on an association's identity, before it is accepted.
pub enum Authentication {
    /// Go on; `session` is kept in [`AssociationInfo::session`]. `verified`: the user identity
    /// was checked, and a requested positive response goes back in the A-ASSOCIATE-AC
    /// (PS3.7 §D.3.3.7.2).
    Accept { session: Session, verified: bool },
    /// A-ASSOCIATE-RJ, rejected-permanent by the ACSE provider, no reason given (PS3.7
    /// §D.3.3.7: an authentication failure); `why` is for the log, never sent.
    Reject { why: String },
}

/// Sub-operation counts of C-MOVE/C-GET responses (PS3.7 §9.3.3.2, §9.3.4.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubOperations {
    pub remaining: Option<u16>,
    pub completed: u16,
    pub failed: u16,
    pub warning: u16,
}

/// A final response: the status and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    /// Error Comment (0000,0902): at most 64 characters, no PHI.
    pub error_comment: Option<String>,
    pub offending_elements: Vec<(u16, u16)>,
    pub suboperations: Option<SubOperations>,
    /// A data set sent with the response (e.g. Failed SOP Instance UID List of C-MOVE).
    pub data_set: Option<Vec<u8>>,
}

impl Reply {
    pub fn status(status: Status) -> Reply {
        Reply { status, error_comment: None, offending_elements: Vec::new(), suboperations: None, data_set: None }
    }

    /// A status with an Error Comment, cut to the 64 characters of LO (PS3.5 §6.2).
    pub fn with_comment(status: Status, comment: &str) -> Reply {
        let comment: String = comment.chars().take(64).collect();
        Reply { error_comment: Some(comment), ..Reply::status(status) }
    }

    pub(crate) fn apply(&self, rsp: &mut Command) {
        rsp.error_comment = self.error_comment.clone();
        rsp.offending_elements = self.offending_elements.clone();
        if let Some(s) = self.suboperations {
            rsp.remaining_suboperations = s.remaining;
            rsp.completed_suboperations = Some(s.completed);
            rsp.failed_suboperations = Some(s.failed);
            rsp.warning_suboperations = Some(s.warning);
        }
        if self.data_set.is_some() {
            rsp.data_set_type = crate::command::DATA_SET_PRESENT;
        }
    }
}

/// A C-STORE request as the handler sees it.
#[derive(Debug, Clone)]
pub struct StoreRequest<'a> {
    pub command: &'a Command,
    pub sop_class_uid: &'a str,
    pub sop_instance_uid: &'a str,
    /// The transfer syntax of the presentation context: the data set's encoding.
    pub transfer_syntax: &'a str,
}

/// The data set of a request, fragment by fragment as P-DATA values arrive.
pub struct DataStream<'a> {
    pub(crate) assoc: &'a mut Association,
    pub(crate) failed: bool,
}

impl DataStream<'_> {
    /// The next fragment; `None` after the last. An error means the association is gone
    /// (aborted, closed, timed out): the handler must not acknowledge anything.
    pub async fn next(&mut self) -> Result<Option<Bytes>, DimseError> {
        let r = self.assoc.receive_data().await;
        if r.is_err() {
            self.failed = true;
        }
        r
    }
}

/// Sends pending responses of a C-FIND/C-MOVE/C-GET and notices C-CANCEL.
pub struct Responder<'a> {
    pub(crate) assoc: &'a mut Association,
    pub(crate) context_id: u8,
    pub(crate) request: &'a Command,
    /// The final response went out early (`Responder::reply_now`): the toolkit sends no other.
    pub(crate) replied: bool,
    /// A follow-up exchange left the association in an unknown state: the toolkit aborts it.
    pub(crate) broken: bool,
}

impl<'a> Responder<'a> {
    pub(crate) fn new(assoc: &'a mut Association, context_id: u8, request: &'a Command) -> Responder<'a> {
        Responder { assoc, context_id, request, replied: false, broken: false }
    }
}

impl Responder<'_> {
    /// A pending response (status 0xFF00/0xFF01), with an identifier and/or counts (PS3.7
    /// §9.1.2.1.6, §9.1.3.1.6, §9.1.4.1.6).
    pub async fn pending(&mut self, status: Status, identifier: Option<&[u8]>, counts: Option<SubOperations>) -> Result<(), DimseError> {
        let mut reply = Reply::status(status);
        reply.suboperations = counts;
        let mut rsp = self.request.response(status);
        reply.apply(&mut rsp);
        if identifier.is_some() {
            rsp.data_set_type = crate::command::DATA_SET_PRESENT;
        }
        self.assoc.send_message(self.context_id, &rsp, identifier).await
    }

    /// True when the peer asked to cancel this operation (C-CANCEL-RQ) or left.
    pub fn cancelled(&mut self) -> bool {
        match self.request.message_id {
            Some(id) => self.assoc.poll_cancel(id),
            None => false,
        }
    }

    /// The negotiated transfer syntax of the request's presentation context.
    pub fn transfer_syntax(&self) -> &str {
        self.assoc.context(self.context_id).map(|c| c.transfer_syntax.as_str()).unwrap_or("1.2.840.10008.1.2")
    }
}

/// A C-STORE's reply when the association performs operations asynchronously (PS3.7
/// §D.3.3.3): ready now, or a future of it that the association awaits while it reads the
/// requests that follow (the store's data set is read; only its commit is still running).
pub enum StoreReply {
    Now(Reply),
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send + 'static>>),
}

/// What an SCP implements. All methods run on the association's task; an association handles
/// one operation at a time, except C-STOREs when the requestor negotiated an asynchronous
/// operations window (their commits then overlap, see [`Handler::c_store_deferred`]).
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Which abstract syntaxes to accept at association time. Default: Verification and
    /// every storage SOP class.
    fn accepts(&self, abstract_syntax: &str) -> bool {
        abstract_syntax == VERIFICATION || is_storage_class(abstract_syntax)
    }

    /// C-STORE (PS3.4 Annex B). The data set arrives as a stream; the toolkit discards
    /// whatever the handler leaves unread before sending the response.
    async fn c_store(&self, info: &AssociationInfo, request: StoreRequest<'_>, data: &mut DataStream<'_>) -> Reply;

    /// C-STORE on an association with an asynchronous operations window: reads the data set
    /// and may return before the store is committed, with the reply to come. Default: as
    /// [`Handler::c_store`], the reply now.
    async fn c_store_deferred(&self, info: &AssociationInfo, request: StoreRequest<'_>, data: &mut DataStream<'_>) -> StoreReply {
        StoreReply::Now(self.c_store(info, request, data).await)
    }

    /// C-FIND (PS3.4 Annex C.4.1): matches go out as pending responses through `responder`;
    /// the returned reply is the final one.
    async fn c_find(&self, info: &AssociationInfo, request: &Command, identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        let _ = (info, request, identifier, responder);
        Reply::status(Status::UNRECOGNIZED_OPERATION)
    }

    /// C-MOVE (PS3.4 Annex C.4.2).
    async fn c_move(&self, info: &AssociationInfo, request: &Command, identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        let _ = (info, request, identifier, responder);
        Reply::status(Status::UNRECOGNIZED_OPERATION)
    }

    /// C-GET (PS3.4 Annex C.4.3).
    async fn c_get(&self, info: &AssociationInfo, request: &Command, identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        let _ = (info, request, identifier, responder);
        Reply::status(Status::UNRECOGNIZED_OPERATION)
    }

    /// Decides on the identity of an association about to be accepted: its AE titles, address,
    /// TLS certificate and User Identity sub-item are in `info`. Default: accepted, the user
    /// identity (if any) ignored, which PS3.7 §D.3.3.7 allows.
    async fn authenticate(&self, info: &AssociationInfo) -> Authentication {
        let _ = info;
        Authentication::Accept { session: Session::default(), verified: false }
    }

    /// An association refused at negotiation (PS3.8 §7.1.1.9: A-ASSOCIATE-RJ, e.g. an unknown
    /// calling AE title), called before the rejection is sent: for the audit trail. `info` has
    /// the titles and the peer's address. Default: nothing.
    async fn rejected(&self, info: &AssociationInfo, reason: &str) {
        let _ = (info, reason);
    }

    /// N-ACTION (PS3.7 §10.1.4), e.g. Storage Commitment requests (PS3.4 Annex J).
    async fn n_action(&self, info: &AssociationInfo, request: &Command, data: Option<Vec<u8>>, responder: &mut Responder<'_>) -> Reply {
        let _ = (info, request, data, responder);
        Reply::status(Status::UNRECOGNIZED_OPERATION)
    }
}
