//! The async SCP loop: accept, negotiate (PS3.8 §7.1), serve one association per task,
//! dispatch DIMSE requests to a [`Handler`], release/abort (PS3.8 §7.2-7.3), and shut down in
//! order (stop accepting; in-flight associations get a grace period).

use crate::association::{Association, Incoming, Timeouts};
use crate::command::{Command, CommandField};
use crate::error::DimseError;
use crate::handler::{
    AssociationInfo, Authentication, DataStream, Handler, Reply, Responder, Session, StoreReply, StoreRequest, UserIdentity,
};
use crate::negotiate::{decide, over_capacity, requestor_scp_classes, AcceptorPolicy, Decision};
use crate::status::Status;
use crate::transport::{Connection, ServerTls};
use crate::wire;
use bytes::BytesMut;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderASCEReason, AssociationRJSource, AssociationRQ, Pdu, UserIdentityType,
    UserVariableItem,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Largest identifier accepted with a C-FIND/C-MOVE/C-GET/N-ACTION request.
const MAX_IDENTIFIER_BYTES: usize = 1 << 20;
/// Connections being turned away at once when over the cap; past this they are just closed.
const MAX_REJECTING: usize = 32;
/// How long the requestor gets to close the connection after a rejection (PS3.8 §9.1.5 ARTIM).
const ARTIM: Duration = Duration::from_secs(5);
/// Time a turned-away peer gets to send its A-ASSOCIATE-RQ.
const REJECT_READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ScpConfig {
    pub policy: AcceptorPolicy,
    /// Associations served at once; more are rejected (transient, local limit exceeded).
    pub max_associations: usize,
    pub timeouts: Timeouts,
    /// After shutdown begins, how long in-flight associations get to finish.
    pub shutdown_grace: Duration,
    /// Every connection speaks TLS first (PS3.15 Annex B); `None`: plain TCP.
    pub tls: Option<Arc<dyn ServerTls>>,
}

/// A peer gets this long to finish its TLS handshake (unless the read timeout is shorter).
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Serves associations on `listener` until `shutdown` resolves, then drains.
pub async fn serve<H: Handler>(listener: TcpListener, config: ScpConfig, handler: Arc<H>, shutdown: impl Future<Output = ()>) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_associations.max(1)));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "dimse accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small command/response exchanges stall on Nagle's algorithm without it (measured
        // on a peer: 11 → 277 small instances/s).
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let (config, handler, stop) = (config.clone(), handler.clone(), stop_rx.clone());
                tasks.spawn(async move {
                    if let Err(e) = serve_association(socket, &config, handler.as_ref(), stop).await {
                        tracing::info!(peer = %peer, error = %e, source = ?std::error::Error::source(&e), "association ended with an error");
                    }
                    drop(permit);
                });
            }
            Err(_) => match rejecting.clone().try_acquire_owned() {
                Ok(permit) => {
                    tracing::warn!(peer = %peer, max = config.max_associations, "association cap reached: rejecting");
                    let config = config.clone();
                    tasks.spawn(async move {
                        reject_over_capacity(socket, &config).await;
                        drop(permit);
                    });
                }
                Err(_) => drop(socket),
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(in_flight, "dimse: no new associations, draining");
    }
    let drained = tokio::time::timeout(config.shutdown_grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            grace_seconds = config.shutdown_grace.as_secs(),
            "associations still open after the grace period: aborting them"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// The connection an association runs over: the TCP socket itself, or TLS on it once the
/// handshake is done. A peer that fails the handshake (plain DICOM on the TLS port, an
/// untrusted or missing client certificate where one is required) never gets further.
async fn establish(socket: TcpStream, config: &ScpConfig) -> Result<Connection, DimseError> {
    match &config.tls {
        None => Ok(Connection::Tcp(socket)),
        Some(tls) => {
            let deadline = config.timeouts.read.map_or(HANDSHAKE_DEADLINE, |t| t.min(HANDSHAKE_DEADLINE));
            Connection::accept_tls(socket, tls.as_ref(), deadline).await
        }
    }
}

/// User-Identity sub-item of the A-ASSOCIATE-AC (PS3.7 Table D.3-15).
const USER_IDENTITY_RESPONSE: u8 = 0x59;

/// The User Identity sub-item of an A-ASSOCIATE-RQ (PS3.7 Table D.3-14).
fn user_identity(rq: &AssociationRQ) -> Option<UserIdentity> {
    rq.user_variables.iter().find_map(|item| match item {
        UserVariableItem::UserIdentityItem(u) => Some(UserIdentity {
            kind: match u.identity_type() {
                UserIdentityType::Username => UserIdentity::USERNAME,
                UserIdentityType::UsernamePassword => UserIdentity::USERNAME_PASSCODE,
                UserIdentityType::KerberosServiceTicket => 3,
                UserIdentityType::SamlAssertion => 4,
                UserIdentityType::Jwt => UserIdentity::JWT,
                _ => 0,
            },
            positive_response_requested: u.positive_response_requested(),
            primary: u.primary_field(),
            secondary: u.secondary_field(),
        }),
        // An identity type this PDU codec does not know (dicom-ul keeps it raw).
        UserVariableItem::Unknown(0x58, _) => {
            Some(UserIdentity { kind: 0, positive_response_requested: false, primary: Vec::new(), secondary: Vec::new() })
        }
        _ => None,
    })
}

/// Sends an A-ASSOCIATE-RJ, then lets the requestor close the connection (PS3.8 §9.2: it does
/// on receiving the rejection; the ARTIM timer bounds the wait). Closing first races the
/// rejection: a requestor that sees the connection end before it read the PDU reports an
/// abort instead.
/// How long the answer to a rejected association waits for the refusal's audit record.
const REJECT_AUDIT_WAIT: Duration = Duration::from_secs(5);

async fn send_rejection(socket: &mut Connection, rj: AssociationRJ) -> Result<(), DimseError> {
    socket.write_all(&wire::encode(&Pdu::AssociationRJ(rj))?).await.map_err(DimseError::WritePdu)?;
    let _ = socket.flush().await;
    let mut sink = [0u8; 256];
    let _ = tokio::time::timeout(ARTIM, async {
        while let Ok(n) = socket.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    let _ = socket.shutdown().await;
    Ok(())
}

async fn reject_over_capacity(socket: TcpStream, config: &ScpConfig) {
    let Ok(mut socket) = establish(socket, config).await else { return };
    let mut buf = BytesMut::new();
    let read = tokio::time::timeout(REJECT_READ_TIMEOUT, wire::read_pdu(&mut socket, &mut buf, 1 << 16)).await;
    if let Ok(Ok(Some(Pdu::AssociationRQ(_)))) = read {
        let _ = send_rejection(&mut socket, over_capacity()).await;
    }
    let _ = socket.shutdown().await;
}

async fn read_with(timeout: Option<Duration>, socket: &mut Connection, buf: &mut BytesMut) -> Result<Option<Pdu>, DimseError> {
    let fut = wire::read_pdu(socket, buf, 1 << 16);
    match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| DimseError::Timeout { step: "waiting for A-ASSOCIATE-RQ" })?,
        None => fut.await,
    }
}

async fn serve_association<H: Handler>(
    socket: TcpStream,
    config: &ScpConfig,
    handler: &H,
    mut stop: watch::Receiver<bool>,
) -> Result<(), DimseError> {
    let mut socket = establish(socket, config).await?;
    let mut buf = BytesMut::new();
    let rq = match read_with(config.timeouts.read, &mut socket, &mut buf).await? {
        Some(Pdu::AssociationRQ(rq)) => rq,
        Some(_) => {
            let abort = Pdu::AbortRQ {
                source: dicom_ul::pdu::AbortRQSource::ServiceProvider(dicom_ul::pdu::AbortRQServiceProviderReason::UnexpectedPdu),
            };
            let _ = socket.write_all(&wire::encode(&abort)?).await;
            return Err(DimseError::UnexpectedPdu { what: "PDU other than A-ASSOCIATE-RQ on a new connection" });
        }
        None => return Ok(()),
    };
    let mut info = AssociationInfo {
        calling_ae: rq.calling_ae_title.trim().to_owned(),
        called_ae: rq.called_ae_title.trim().to_owned(),
        peer_addr: socket.tcp().peer_addr().ok(),
        tls: socket.tls_peer(),
        user_identity: user_identity(&rq),
        session: Session::default(),
    };
    let (mut ac, contexts, peer_max, window) = match decide(&rq, &config.policy, |a| handler.accepts(a)) {
        Decision::Reject(rj) => {
            tracing::info!(calling_ae = %rq.calling_ae_title, called_ae = %rq.called_ae_title, reason = %rj.source, "association rejected");
            // The refusal is recorded before the answer, but a busy catalog does not keep the
            // peer waiting past REJECT_AUDIT_WAIT (a requestor gives up after its ACSE
            // timeout): then the answer goes first and the recording finishes after it.
            let reason = rj.source.to_string();
            let audit = handler.rejected(&info, &reason);
            tokio::pin!(audit);
            let recorded = tokio::time::timeout(REJECT_AUDIT_WAIT, &mut audit).await.is_ok();
            let sent = send_rejection(&mut socket, rj).await;
            if !recorded {
                audit.await;
            }
            return sent;
        }
        Decision::Accept { ac, contexts, peer_max_pdu, window } => (ac, contexts, peer_max_pdu, window),
    };
    match handler.authenticate(&info).await {
        Authentication::Reject { why } => {
            tracing::info!(calling_ae = %info.calling_ae, why, "association rejected: authentication failed");
            let rj = AssociationRJ {
                result: AssociationRJResult::Permanent,
                source: AssociationRJSource::ServiceProviderASCE(AssociationRJServiceProviderASCEReason::NoReasonGiven),
            };
            return send_rejection(&mut socket, rj).await;
        }
        Authentication::Accept { session, verified } => {
            info.session = session;
            // PS3.7 §D.3.3.7.2: the server response sub-item, with an empty response.
            if verified && info.user_identity.as_ref().is_some_and(|u| u.positive_response_requested) {
                ac.user_variables.push(UserVariableItem::Unknown(USER_IDENTITY_RESPONSE, vec![0, 0]));
            }
        }
    }
    let peer_scp_classes = requestor_scp_classes(&ac);
    socket.write_all(&wire::encode(&Pdu::AssociationAC(ac))?).await.map_err(DimseError::WritePdu)?;
    tracing::debug!(calling_ae = %info.calling_ae, contexts = contexts.len(), "association accepted");
    let mut assoc =
        Association::new(socket, buf.freeze(), config.policy.max_pdu_length, peer_max, contexts, info.calling_ae.clone(), config.timeouts)
            .with_peer_scp_classes(peer_scp_classes);
    // Stores whose data set is read and whose commit is still running (only with a window
    // over 1): their replies go out as each commit ends, in whatever order (each names the
    // request it answers, PS3.7 §9.3.1.2).
    let mut committing = Committing::default();
    let window = usize::from(window.max(1));
    loop {
        let next = tokio::select! {
            biased;
            Some(done) = committing.tasks.join_next_with_id(), if !committing.tasks.is_empty() => Next::Committed(done),
            r = assoc.receive_command(), if committing.tasks.len() < window => Next::Incoming(r),
            _ = stopped(&mut stop) => Next::Stop,
        };
        let incoming = match next {
            Next::Committed(done) => {
                committing.answer(&mut assoc, done).await?;
                continue;
            }
            Next::Incoming(r) => r,
            Next::Stop => {
                // Between messages: answer what is committing, then leave (PS3.8 §7.3 A-ABORT).
                let _ = committing.answer_all(&mut assoc).await;
                assoc.abort(true).await;
                return Ok(());
            }
        };
        let (context_id, command) = match incoming {
            Ok(Incoming::Command { context_id, command }) => (context_id, command),
            Ok(Incoming::ReleaseRequested) => {
                committing.answer_all(&mut assoc).await?;
                return assoc.release_response().await;
            }
            Ok(Incoming::Aborted | Incoming::Closed) => {
                // Nobody to answer; the commits finish on their own.
                committing.tasks.detach_all();
                return Ok(());
            }
            Err(e) => {
                committing.tasks.detach_all();
                assoc.abort(true).await;
                return Err(e);
            }
        };
        let deferring = (window > 1).then_some(&mut committing);
        match dispatch(&mut assoc, &info, handler, context_id, &command, deferring).await {
            Ok(()) => {}
            Err(e @ (DimseError::Aborted | DimseError::Closed)) => {
                committing.tasks.detach_all();
                return Err(e);
            }
            Err(e) => {
                committing.tasks.detach_all();
                assoc.abort(true).await;
                return Err(e);
            }
        }
    }
}

enum Next {
    Committed(Result<(tokio::task::Id, Reply), tokio::task::JoinError>),
    Incoming(Result<Incoming, DimseError>),
    Stop,
}

/// The C-STOREs of an association being committed asynchronously, each with the request it
/// answers.
#[derive(Default)]
struct Committing {
    tasks: JoinSet<Reply>,
    requests: std::collections::HashMap<tokio::task::Id, (u8, Command)>,
}

impl Committing {
    fn add(&mut self, context_id: u8, command: &Command, reply: std::pin::Pin<Box<dyn Future<Output = Reply> + Send>>) {
        let id = self.tasks.spawn(reply).id();
        self.requests.insert(id, (context_id, command.clone()));
    }

    /// Sends the reply of a commit that ended (a commit task that failed is a processing
    /// failure of its request).
    async fn answer(
        &mut self,
        assoc: &mut Association,
        done: Result<(tokio::task::Id, Reply), tokio::task::JoinError>,
    ) -> Result<(), DimseError> {
        let (id, reply) = match done {
            Ok((id, reply)) => (id, reply),
            Err(e) => (e.id(), Reply::with_comment(Status::PROCESSING_FAILURE, "the store failed")),
        };
        let Some((context_id, command)) = self.requests.remove(&id) else { return Ok(()) };
        send_reply(assoc, context_id, &command, reply).await
    }

    async fn answer_all(&mut self, assoc: &mut Association) -> Result<(), DimseError> {
        while let Some(done) = self.tasks.join_next_with_id().await {
            self.answer(assoc, done).await?;
        }
        Ok(())
    }
}

/// Resolves once shutdown has begun.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            // The server is gone without a shutdown signal: never resolve here.
            std::future::pending::<()>().await;
        }
    }
}

async fn dispatch<H: Handler>(
    assoc: &mut Association,
    info: &AssociationInfo,
    handler: &H,
    context_id: u8,
    command: &Command,
    deferring: Option<&mut Committing>,
) -> Result<(), DimseError> {
    let reply = match command.field {
        CommandField::C_ECHO_RQ => {
            assoc.drain_data().await?;
            Reply::status(Status::SUCCESS)
        }
        CommandField::C_STORE_RQ => {
            let transfer_syntax = assoc.context(context_id).map(|c| c.transfer_syntax.clone()).unwrap_or_default();
            let (Some(class), Some(instance)) = (command.affected_sop_class_uid.clone(), command.affected_sop_instance_uid.clone()) else {
                assoc.drain_data().await?;
                return send_reply(
                    assoc,
                    context_id,
                    command,
                    Reply::with_comment(Status::MISTYPED_ARGUMENT, "C-STORE-RQ without affected SOP class/instance"),
                )
                .await;
            };
            let request = StoreRequest { command, sop_class_uid: &class, sop_instance_uid: &instance, transfer_syntax: &transfer_syntax };
            let mut stream = DataStream { assoc, failed: false };
            let reply = match deferring {
                Some(committing) => match handler.c_store_deferred(info, request, &mut stream).await {
                    StoreReply::Now(reply) => reply,
                    StoreReply::Later(reply) => {
                        if stream.failed {
                            return Err(DimseError::Aborted);
                        }
                        assoc.drain_data().await?;
                        committing.add(context_id, command, reply);
                        return Ok(());
                    }
                },
                None => handler.c_store(info, request, &mut stream).await,
            };
            if stream.failed {
                return Err(DimseError::Aborted);
            }
            assoc.drain_data().await?;
            reply
        }
        CommandField::C_FIND_RQ | CommandField::C_MOVE_RQ | CommandField::C_GET_RQ => {
            let identifier = assoc.receive_data_set(MAX_IDENTIFIER_BYTES).await?;
            let mut responder = Responder::new(assoc, context_id, command);
            let reply = match command.field {
                CommandField::C_FIND_RQ => handler.c_find(info, command, identifier, &mut responder).await,
                CommandField::C_MOVE_RQ => handler.c_move(info, command, identifier, &mut responder).await,
                _ => handler.c_get(info, command, identifier, &mut responder).await,
            };
            // A C-GET sub-operation broke off mid-message (PS3.4 §C.4.3): nothing can follow.
            if responder.broken {
                return Err(DimseError::Broken { step: "a C-STORE sub-operation" });
            }
            reply
        }
        CommandField::N_ACTION_RQ => {
            let data = if command.has_data_set() { Some(assoc.receive_data_set(MAX_IDENTIFIER_BYTES).await?) } else { None };
            let mut responder = Responder::new(assoc, context_id, command);
            let reply = handler.n_action(info, command, data, &mut responder).await;
            // PS3.4 §J.3.3: the handler answered early and went on (an N-EVENT-REPORT).
            if responder.broken {
                return Err(DimseError::Broken { step: "a follow-up of N-ACTION" });
            }
            if responder.replied {
                return Ok(());
            }
            reply
        }
        // A cancel for an operation that already ended (PS3.7 §9.3.2.3): nothing to do.
        CommandField::C_CANCEL_RQ => return Ok(()),
        field if field.is_response() => {
            tracing::debug!(field = field.0, "ignoring an unexpected response");
            return assoc.drain_data().await;
        }
        _ => {
            assoc.drain_data().await?;
            Reply::status(Status::UNRECOGNIZED_OPERATION)
        }
    };
    send_reply(assoc, context_id, command, reply).await
}

async fn send_reply(assoc: &mut Association, context_id: u8, command: &Command, reply: Reply) -> Result<(), DimseError> {
    let mut rsp = command.response(reply.status);
    if command.field == CommandField::C_ECHO_RQ {
        rsp.affected_sop_instance_uid = None;
    }
    reply.apply(&mut rsp);
    assoc.send_message(context_id, &rsp, reply.data_set.as_deref()).await
}
