//! The archive's DIMSE front end (PS3.4 services over PS3.7 messages): translates DIMSE
//! requests into calls on `vna_archive::Archive` and archive errors into DIMSE statuses.
//! Associations, PDUs and the SCP loop are `vna_dimse`'s; this crate only knows services.

pub mod commitment;
pub mod find;
mod find_scp;
pub mod retrieve;
mod status;
mod store;

pub use status::store_failure;

use async_trait::async_trait;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use vna_archive::Archive;
use vna_dimse::{AssociationInfo, Command, DataStream, Handler, Reply, Responder, ScpConfig, Status, StoreRequest};

/// What a known peer may do (`[[dimse.known_aes]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRights {
    pub can_store: bool,
    pub can_query: bool,
    pub can_retrieve: bool,
}

/// Who may do what: known AEs by title, and whether unknown ones may do everything (they only
/// get that far when `allow_any_calling_ae` let them associate).
#[derive(Debug, Clone, Default)]
pub struct Peers {
    pub known: HashMap<String, PeerRights>,
    pub allow_unknown: bool,
    /// Where known AEs listen: the C-MOVE destinations (PS3.4 §C.4.2.1.2).
    pub destinations: HashMap<String, Destination>,
}

/// A known AE's address (`host`/`port` of `[[dimse.known_aes]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub port: u16,
}

impl Peers {
    pub fn rights(&self, ae: &str) -> Option<PeerRights> {
        match self.known.get(ae) {
            Some(r) => Some(*r),
            None if self.allow_unknown => Some(PeerRights { can_store: true, can_query: true, can_retrieve: true }),
            None => None,
        }
    }
}

/// The archive as a DIMSE service provider.
pub struct ArchiveScp {
    archive: Arc<Archive>,
    peers: Peers,
}

impl ArchiveScp {
    pub fn new(archive: Arc<Archive>, peers: Peers) -> ArchiveScp {
        ArchiveScp { archive, peers }
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
        if !self.peers.rights(&info.calling_ae).is_some_and(|r| r.can_store) {
            // PS3.7 Annex C "Refused: Not Authorized"; the toolkit discards the data set.
            return Reply::with_comment(Status::NOT_AUTHORIZED, "this calling AE title may not store");
        }
        store::c_store(&self.archive, request, data).await
    }

    async fn c_find(&self, info: &AssociationInfo, request: &Command, identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        if !self.peers.rights(&info.calling_ae).is_some_and(|r| r.can_query) {
            return Reply::with_comment(Status::NOT_AUTHORIZED, "this calling AE title may not query");
        }
        find_scp::c_find(&self.archive, info, request, &identifier, responder).await
    }

    /// C-MOVE (PS3.4 §C.4.2) to a known AE, for AEs that may retrieve.
    async fn c_move(&self, info: &AssociationInfo, request: &Command, identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        if !self.peers.rights(&info.calling_ae).is_some_and(|r| r.can_retrieve) {
            return Reply::with_comment(Status::NOT_AUTHORIZED, "this calling AE title may not retrieve");
        }
        let destination = request.move_destination.as_deref().and_then(|ae| self.peers.destinations.get(ae.trim()));
        retrieve::c_move(&self.archive, destination, info, request, &identifier, responder).await
    }

    /// C-GET (PS3.4 §C.4.3), for AEs that may retrieve.
    async fn c_get(&self, info: &AssociationInfo, request: &Command, identifier: Vec<u8>, responder: &mut Responder<'_>) -> Reply {
        if !self.peers.rights(&info.calling_ae).is_some_and(|r| r.can_retrieve) {
            return Reply::with_comment(Status::NOT_AUTHORIZED, "this calling AE title may not retrieve");
        }
        retrieve::c_get(&self.archive, info, request, &identifier, responder).await
    }

    /// Storage Commitment (PS3.4 Annex J), for AEs that may store.
    async fn n_action(&self, info: &AssociationInfo, request: &Command, data: Option<Vec<u8>>, responder: &mut Responder<'_>) -> Reply {
        if !self.peers.rights(&info.calling_ae).is_some_and(|r| r.can_store) {
            return Reply::with_comment(Status::NOT_AUTHORIZED, "this calling AE title may not request commitment");
        }
        commitment::n_action(&self.archive, info, request, data.as_deref(), responder).await
    }
}

/// Serves DIMSE on `listener` until `shutdown` resolves, then drains in-flight associations
/// within `config.shutdown_grace`.
pub async fn serve(archive: Arc<Archive>, peers: Peers, listener: TcpListener, config: ScpConfig, shutdown: impl Future<Output = ()>) {
    vna_dimse::serve(listener, config, Arc::new(ArchiveScp::new(archive, peers)), shutdown).await
}
