//! The archive's DIMSE front end (PS3.4 services over PS3.7 messages): translates DIMSE
//! requests into calls on `vna_archive::Archive` and archive errors into DIMSE statuses.
//! Associations, PDUs and the SCP loop are `vna_dimse`'s; this crate only knows services.
//!
//! # How it is built
//!
//! The archive's DIMSE front end: `ArchiveScp` implements `vna_dimse::Handler`. `store.rs` is the
//! C-STORE SCP: it validates the command's UIDs, puts `vna_dicom::write::file_meta` (preamble and
//! meta group with the command's SOP class/instance and the context's transfer syntax) before the
//! received data set and streams both into `Archive::begin_store` with `expected_sop` set, so the
//! pipeline refuses a data set whose SOP Class/Instance UID differs (`ArchiveError::SopMismatch`).
//! `status.rs` holds the `ErrorClass` renderings, one `match` per service: C-STORE status
//! (0xA900 mismatch, 0xC000 cannot understand, 0xC001 version conflict, 0xA700 out of resources,
//! 0x0122, 0x0110), C-FIND status (`query_failure`: 0xA700 busy/timeout/too large, else 0xC000
//! unable to process) and Storage Commitment Failure Reason (0x0213 resource limitation, else
//! 0x0110), C-MOVE/C-GET status (`retrieve_failure`: 0xA701 busy/timeout/too large, else
//! 0xC000). `Peers` holds the known AEs' rights (C-STORE and Storage Commitment need `can_store`,
//! C-FIND `can_query`, C-MOVE/C-GET `can_retrieve`; otherwise 0x0124), the tenants each sees
//! and the addresses it may call from (a known title from another host is refused with 0x0124),
//! each association's caller becoming a `vna_archive::Principal` that the archive checks and
//! whose visibility bounds every query and retrieve; and their listening addresses
//! (`destinations`, the C-MOVE destinations). `ArchiveScp::accepts` takes the toolkit's default
//! (Verification, storage) plus each service module's `accepts`.
//! `find_scp.rs` is the C-FIND SCP over the pure `find/` model: `parse_request` in the context's
//! transfer syntax (`FindOptions::default()`: the toolkit negotiates no extended negotiation, so no
//! fuzzy names or relational queries), then `Archive::search_{patients,studies,series,instances}`
//! page by page (500 rows, `limit`/`offset`), one Pending (0xFF01 when requested keys were not
//! supported) per row as soon as its page is read, `Responder::cancelled` checked before every row
//! (0xFE00). Offset paging over a catalog that changes meanwhile may repeat or skip a row.
//! `commitment.rs` is the Storage Commitment Push Model SCP (PS3.4 Annex J): N-ACTION-RSP at once
//! (`Responder::reply_now`), then each referenced instance looked up (`Archive::current_instance`,
//! same SOP class or 0x0119, unknown 0x0112) and the result sent as N-EVENT-REPORT-RQ on the same
//! association (`Responder::event_report`, event type 1 or 2). If the requester released first the
//! result is logged as undelivered; reporting on a new association is not built yet.
//! `retrieve/` is C-MOVE and C-GET (PS3.4 §C.4.2, §C.4.3), Patient and Study Root.
//! `retrieve_query` keeps of the identifier only the level and the unique keys (PS3.4
//! §C.4.2.1.4), reuses `find::request_from_dataset` (hierarchical: unique keys above required),
//! requires the level's own unique key and queries the catalog at instance level (more than 65535
//! matches: 0xA701, counts are US). `c_move.rs`: Move Destination must be in `Peers::destinations`
//! (else 0xA801); sub-associations with our AE title as calling AE proposing one presentation
//! context per (SOP class, transfer syntax) pair (`proposal.rs`: the stored syntax in a context
//! of its own, then Explicit and Implicit VR Little Endian where the archive can re-encode or
//! decode, per `vna_archive::deliverable_syntaxes`; past 128 pairs, further sub-associations),
//! each instance sent in its stored syntax where the destination accepted that context, else on
//! the first accepted fallback; a broken sub-association is
//! aborted and a new one opened for the next instance. `c_get.rs`: on the C-GET's own
//! association through `Responder::store`, on the requester's context (with the SCP role) in
//! the instance's most preferred deliverable syntax: the stored one wherever it was offered. Both stream each object
//! from `Archive::open_as` as a bare data set in the context's syntax (`source.rs`), send a
//! Pending (0xFF00) with
//! remaining/completed/failed/warning after every sub-operation, check C-CANCEL before each
//! (0xFE00 with the remaining count), and end with `Tally::final_reply`: 0x0000, 0xB000 when any
//! sub-operation failed or warned, 0xA702 when failures happened and no C-STORE-RQ ever went out
//! (destination down, rejecting, or accepting no context), with the Failed SOP Instance UID List
//! (0008,0058) in the identifier (on cancel: the failed ones only; the remaining count says the
//! rest). Not built: encoding into a compressed syntax, Composite Instance Root / Patient-Study Only models,
//! relational retrieve, retrying a failed sub-association, a cap on concurrent sub-associations.

pub mod commitment;
pub mod find;
mod find_scp;
pub mod retrieve;
mod status;
mod store;

pub use status::store_failure;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use vna_archive::{Archive, Permission, Principal, PrincipalKind};
use vna_auth::Authenticator;
use vna_dimse::{
    AssociationInfo, Authentication, Command, DataStream, Handler, Reply, Responder, ScpConfig, Session, Status, StoreReply, StoreRequest,
    UserIdentity,
};

/// What a known peer may do (`[[dimse.known_aes]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRights {
    pub can_store: bool,
    pub can_query: bool,
    pub can_retrieve: bool,
}

impl PeerRights {
    pub const ALL: PeerRights = PeerRights { can_store: true, can_query: true, can_retrieve: true };
}

/// A known AE: its rights, the tenants it sees and stores into, and the addresses it may call
/// from (its `host`, resolved when the server starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAe {
    pub rights: PeerRights,
    /// `None`: every tenant.
    pub tenants: Option<Vec<String>>,
    /// Empty: from anywhere (no `host` configured, or `check_host = false`).
    pub addresses: Vec<std::net::IpAddr>,
    /// The SHA-256 of the TLS client certificate this AE title must present (PS3.15 §B.1:
    /// the identity TLS verified, bound to the AE title); `None`: none required.
    pub certificate_sha256: Option<[u8; 32]>,
    /// Associations from this AE must authenticate a user (PS3.7 §D.3.3.7).
    pub require_user_identity: bool,
}

/// Who may do what: known AEs by title, and whether unknown ones may do everything (they only
/// get that far when `allow_any_calling_ae` let them associate).
#[derive(Debug, Clone, Default)]
pub struct Peers {
    pub known: HashMap<String, KnownAe>,
    pub allow_unknown: bool,
    /// Where known AEs listen: the C-MOVE destinations (PS3.4 §C.4.2.1.2).
    pub destinations: HashMap<String, Destination>,
}

/// A known AE's address (`host`/`port` of `[[dimse.known_aes]]`).
#[derive(Debug, Clone)]
pub struct Destination {
    pub host: String,
    pub port: u16,
    /// Sub-associations to it speak TLS.
    pub tls: Option<vna_dimse::ClientTls>,
}

impl Peers {
    /// The rights and principal of the association's caller, or why it has none: an unknown
    /// AE (when unknown ones are not allowed), or a known AE title calling from an address
    /// that is not its host's, which is someone else using its name.
    pub fn caller(&self, info: &AssociationInfo) -> Result<(PeerRights, Principal), &'static str> {
        let title = info.calling_ae.trim();
        let (rights, tenants) = match self.known.get(title) {
            Some(known) => {
                let from = info.peer_addr.map(|a| a.ip().to_canonical());
                if !known.addresses.is_empty() && !from.is_some_and(|ip| known.addresses.contains(&ip)) {
                    tracing::warn!(calling_ae = %title, peer = ?info.peer_addr, "a known AE title called from another host than its own: refused");
                    return Err("this calling AE title is not expected from this address");
                }
                if let Some(expected) = known.certificate_sha256 {
                    let presented =
                        info.tls.as_ref().and_then(|t| t.certificate.as_deref()).map(|der| <[u8; 32]>::from(Sha256::digest(der)));
                    if presented != Some(expected) {
                        tracing::warn!(calling_ae = %title, peer = ?info.peer_addr, tls = info.tls.is_some(), "a known AE title without its TLS client certificate: refused");
                        return Err("this calling AE title must present its TLS certificate");
                    }
                }
                (known.rights, known.tenants.clone())
            }
            None if self.allow_unknown => (PeerRights::ALL, None),
            None => return Err("unknown calling AE title"),
        };
        let mut permissions = Vec::new();
        if rights.can_query || rights.can_retrieve {
            permissions.push(Permission::Read);
        }
        if rights.can_store {
            permissions.push(Permission::Write);
        }
        let from = info.peer_addr.map(|a| a.ip().to_canonical().to_string()).unwrap_or_default();
        let who = Principal::new(format!("ae:{title}"), PrincipalKind::Application, permissions, tenants).via("dimse", from.clone());
        // A user authenticated at association acts through the AE: what both may, what both see.
        Ok(match info.session.get::<Principal>() {
            Some(user) => (rights, user.clone().via("dimse", from).acting_through(&who)),
            None => (rights, who),
        })
    }
}

/// The archive as a DIMSE service provider.
pub struct ArchiveScp {
    archive: Arc<Archive>,
    peers: Peers,
    /// Verifies the credentials of User Identity Negotiation.
    auth: Arc<Authenticator>,
}

impl ArchiveScp {
    pub fn new(archive: Arc<Archive>, peers: Peers, auth: Arc<Authenticator>) -> ArchiveScp {
        ArchiveScp { archive, peers, auth }
    }

    /// A refusal at association for the audit trail (Security Alert), and the rejection.
    async fn refuse(&self, info: &AssociationInfo, why: &str) -> Authentication {
        let from = info.peer_addr.map(|a| a.ip().to_canonical().to_string()).unwrap_or_default();
        let who = Principal::new(format!("ae:{}", info.calling_ae), PrincipalKind::Application, [], Some(Vec::new())).via("dimse", from);
        self.archive.audit_refusal(&who, why).await;
        Authentication::Reject { why: why.to_owned() }
    }

    /// The caller's principal when it has the right the service needs; else the refusal
    /// (0x0124 Refused: Not Authorized, PS3.7 Annex C).
    /// A refusal is recorded in the audit trail (Security Alert) before it is answered.
    async fn caller(&self, info: &AssociationInfo, right: fn(&PeerRights) -> bool, refusal: &str) -> Result<Principal, Reply> {
        let (who, why) = match self.peers.caller(info) {
            Ok((rights, who)) if right(&rights) => return Ok(who),
            Ok((_, who)) => (who, refusal),
            Err(why) => {
                let from = info.peer_addr.map(|a| a.ip().to_canonical().to_string()).unwrap_or_default();
                let who = Principal::new(format!("ae:{}", info.calling_ae.trim()), PrincipalKind::Application, [], Some(Vec::new()));
                (who.via("dimse", from), why)
            }
        };
        self.archive.audit_refusal(&who, why).await;
        Err(Reply::with_comment(Status::NOT_AUTHORIZED, why))
    }
}

#[async_trait]
impl Handler for ArchiveScp {
    /// Verification and storage (the toolkit's default), the C-FIND models, Storage Commitment.
    fn accepts(&self, abstract_syntax: &str) -> bool {
        abstract_syntax == vna_dimse::VERIFICATION
            || vna_dimse::is_storage_class(abstract_syntax)
            || find_scp::accepts(abstract_syntax)
            || commitment::accepts(abstract_syntax)
            || retrieve::accepts(abstract_syntax)
    }

    async fn c_store(&self, info: &AssociationInfo, request: StoreRequest<'_>, data: &mut DataStream<'_>) -> Reply {
        // PS3.7 Annex C "Refused: Not Authorized"; the toolkit discards the data set.
        let who = match self.caller(info, |r| r.can_store, "this calling AE title may not store").await {
            Ok(who) => who,
            Err(reply) => return reply,
        };
        store::c_store(&self.archive, &who, &info.calling_ae, request, data).await
    }

    async fn c_store_deferred(&self, info: &AssociationInfo, request: StoreRequest<'_>, data: &mut DataStream<'_>) -> StoreReply {
        let who = match self.caller(info, |r| r.can_store, "this calling AE title may not store").await {
            Ok(who) => who,
            Err(reply) => return StoreReply::Now(reply),
        };
        store::c_store_deferred(&self.archive, &who, &info.calling_ae, request, data).await
    }

    async fn c_find(&self, info: &AssociationInfo, request: &Command, identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        let who = match self.caller(info, |r| r.can_query, "this calling AE title may not query").await {
            Ok(who) => who,
            Err(reply) => return reply,
        };
        find_scp::c_find(&self.archive, &who, info, request, &identifier, responder).await
    }

    /// C-MOVE (PS3.4 §C.4.2) to a known AE, for AEs that may retrieve.
    async fn c_move(&self, info: &AssociationInfo, request: &Command, identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        let who = match self.caller(info, |r| r.can_retrieve, "this calling AE title may not retrieve").await {
            Ok(who) => who,
            Err(reply) => return reply,
        };
        let destination = request.move_destination.as_deref().and_then(|ae| self.peers.destinations.get(ae.trim()));
        retrieve::c_move(&self.archive, &who, destination, info, request, &identifier, responder).await
    }

    /// C-GET (PS3.4 §C.4.3), for AEs that may retrieve.
    async fn c_get(&self, info: &AssociationInfo, request: &Command, identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        let who = match self.caller(info, |r| r.can_retrieve, "this calling AE title may not retrieve").await {
            Ok(who) => who,
            Err(reply) => return reply,
        };
        retrieve::c_get(&self.archive, &who, info, request, &identifier, responder).await
    }

    /// User Identity Negotiation (PS3.7 §D.3.3.7): a JSON Web Token (type 5) or the passcode of
    /// a username and passcode (type 2) is a bearer credential, an access token of the
    /// identity provider or an API key, verified as over HTTP (failures counted per address
    /// and audited); the user then acts through the AE. A credential that does not verify
    /// rejects the association. Other types prove nothing: ignored, unless the known AE must
    /// authenticate a user, in which case, like no identity at all, the association is rejected.
    async fn authenticate(&self, info: &AssociationInfo) -> Authentication {
        let required = self.peers.known.get(info.calling_ae.trim()).is_some_and(|k| k.require_user_identity);
        let credential = match &info.user_identity {
            Some(id) if id.kind == UserIdentity::JWT => &id.primary,
            Some(id) if id.kind == UserIdentity::USERNAME_PASSCODE => &id.secondary,
            Some(_) if required => return self.refuse(info, "user identity: only a JSON Web Token or a passcode is accepted").await,
            None if required => return self.refuse(info, "this calling AE title must authenticate a user").await,
            _ => return Authentication::Accept { session: Session::default(), verified: false },
        };
        let Some(peer) = info.peer_addr.map(|a| a.ip()) else {
            return Authentication::Reject { why: "no peer address".into() };
        };
        let verified = match std::str::from_utf8(credential) {
            Ok(token) => self.auth.authenticate_token("dimse", token.trim_end_matches(['\0', ' ']), peer).await,
            Err(_) => self.auth.authenticate_token("dimse", "", peer).await,
        };
        match verified {
            Ok(user) => Authentication::Accept { session: Session(Some(Arc::new(user))), verified: true },
            // Failed logins are audited by the authenticator (A.5.3.12).
            Err(e) => Authentication::Reject { why: e.to_string() },
        }
    }

    /// An association refused at negotiation (unknown calling or called AE title): a Security
    /// Alert in the audit trail before the A-ASSOCIATE-RJ goes out.
    async fn rejected(&self, info: &AssociationInfo, reason: &str) {
        let from = info.peer_addr.map(|a| a.ip().to_canonical().to_string()).unwrap_or_default();
        let who = Principal::new(format!("ae:{}", info.calling_ae), PrincipalKind::Application, [], Some(Vec::new())).via("dimse", from);
        self.archive.audit_refusal(&who, &format!("association rejected: {reason}")).await;
    }

    /// Storage Commitment (PS3.4 Annex J), for AEs that may store.
    async fn n_action(&self, info: &AssociationInfo, request: &Command, data: Option<Vec<u8>>, responder: &mut Responder<'_>) -> Reply {
        let who = match self.caller(info, |r| r.can_store, "this calling AE title may not request commitment").await {
            Ok(who) => who,
            Err(reply) => return reply,
        };
        commitment::n_action(&self.archive, &who, info, request, data.as_deref(), responder).await
    }
}

/// Serves DIMSE on `listener` until `shutdown` resolves, then drains in-flight associations
/// within `config.shutdown_grace`.
pub async fn serve(
    archive: Arc<Archive>,
    peers: Peers,
    auth: Arc<Authenticator>,
    listener: TcpListener,
    config: ScpConfig,
    shutdown: impl Future<Output = ()>,
) {
    vna_dimse::serve(listener, config, Arc::new(ArchiveScp::new(archive, peers, auth)), shutdown).await
}
