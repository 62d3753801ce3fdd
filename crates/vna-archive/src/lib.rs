//! The archive service: the one ingest pipeline, retrieval and query, shared by every front
//! end (DICOMweb, DIMSE, CLI import). It speaks plain Rust types and [`ArchiveError`]; it
//! never knows HTTP, DIMSE, or how a front end renders an error.
//!
//! # How it is built
//!
//! `Archive`: the ingest pipeline (`ingest.rs`), attribute extraction (`extract.rs`), retrieval and
//! query (`retrieve.rs`), frames as pixels (`image.rs`: a frame read whole, bounded at 256 MiB,
//! with one ranged read per stored piece, decoded and rendered on the blocking pool behind a
//! semaphore of one slot per core; an instance version's metadata read and parsed once into its
//! image description and Pixel Data offset, cached by catalog pk and hash; `can_decode` the one
//! test of what can be rendered or transcoded; a video's frame index is its one stream, so
//! `Archive::frames` refuses frame numbers past 1 for a video), non-DICOM
//! ingest (`nondicom.rs`: a spooled file probed in place, a stored study's patient and study
//! copied (one study-level catalog row) when only its UID is given, a different PatientID a conflict, the object streamed into
//! the one ingest pipeline from the file), integrity checks and protection (`verify.rs`: `verify_instance`
//! re-reads and re-hashes, `protection`/`set_legal_hold` on the current version; `blob_ref` in
//! `lib.rs` is the one place a catalog row becomes the exact object version to read), and the errors (`error.rs`): `ArchiveError`, one variant per failed step,
//! and `ErrorClass`, the one table every front end renders.

mod access;
mod apply;
mod audit;
mod clock;
mod deliver;
mod error;
mod extract;
mod found;
mod hold;
mod image;
mod ingest;
pub mod jobs;
mod keys;
mod last_access;
mod lifecycle;
mod nondicom;
mod plan;
pub mod query;
mod reports;

/// What the archive holds, as front ends see it: instances with their patient, study and
/// series, the rows of query results, scopes and byte ranges. Defined in the catalog beside
/// the SQL that reads them, and named through the archive: front ends do not depend on the
/// catalog.
pub mod model {
    pub use crate::found::Found;
    pub use crate::query::{Filter, Key, Level, Matcher, Query};
    pub use vna_catalog::{
        ApiKey, AuditEvent, AuditQuery, AuditRecord, BlobLocation, ByteRange, InstanceAttrs, InstanceRow, JobQuery, JobRow, JobState,
        NewInstance, PatientAttrs, PatientRow, Rejection, RejectionRecord, Scope, SeriesAttrs, SeriesRow, StudyAttrs, StudyRow, Tombstone,
        Visibility,
    };
}
mod retrieve;
mod search;
mod tier_move;
mod verify;

pub use access::{validate_tenant, Permission, Principal, PrincipalKind, Tenancy, TenantMatch, TenantRule};
pub use apply::{apply_kind, apply_params, Pace, APPLY_JOB};
pub use audit::{a5_xml, EventId, APPLICATION_START, APPLICATION_STOP, USER_SECURITY_ATTRIBUTES_CHANGED, USE_OF_RESTRICTED_FUNCTION};
pub use clock::{now_ms, utc_timestamp};
pub use deliver::{deliverable_syntaxes, delivery, Delivery};
pub use error::{ArchiveError, ErrorClass, SopRef};
pub use found::Found;
pub use hold::{hold_filters, HOLD_JOB};
pub use image::{can_decode, NativeFrame, MAX_DECODED_FRAME_BYTES};
pub use ingest::{IngestBody, StoreRequest, StoreStatus, Stored};
pub use lifecycle::lifecycle_facts;
pub use nondicom::NON_DICOM_MEDIA_TYPES;
pub use reports::{ReportIn, ReportSource, ReportView, StudyRef, MAX_REPORT_BYTES};
pub use retrieve::{BulkValue, Frame, FramesOf};
pub use search::{Search, SearchStatus};
pub use verify::HoldOutcome;
pub use verify::Verdict;
/// A date, `YYYY-MM-DD` or DICOM's `YYYYMMDD`, as the Unix milliseconds of its start.
pub use vna_lifecycle::parse_date;
/// A date (`YYYY-MM-DD`) or RFC 3339 instant as Unix milliseconds (lifecycle plans' `now`).
pub use vna_lifecycle::parse_instant;
/// Search by meaning, as front ends name it.
pub use vna_search::{Hit as SearchHit, SearchRequest, SearchResults};

use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;
use vna_blob::BlobStore;
use vna_catalog::{Catalog, VersionPolicy};
use vna_dicom::parse::ParseLimits;

/// The archive service's own settings (the `[ingest]` section of the configuration).
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// Largest object accepted, in bytes.
    pub max_object_bytes: u64,
    /// Stores running at once across all front ends; more get `Busy`.
    pub max_concurrent_stores: usize,
    pub version_policy: VersionPolicy,
    pub parse_limits: ParseLimits,
    /// Tier new objects are written to.
    pub default_tier: String,
    /// Longest list a request may make through any front end (UID and code lists, frame
    /// numbers, includefield entries, parts listing an instance's frames).
    pub max_list_items: u32,
    /// Which tenant a new object belongs to.
    pub tenancy: Arc<Tenancy>,
    /// The lifecycle policies (`lifecycle.policies_dir`); `None`: none configured.
    pub policies: Option<Arc<vna_lifecycle::PolicySet>>,
    /// Locks the policies ask for end at most this far ahead, extended by lifecycle jobs
    /// before they lapse (`lifecycle.lock_horizon_days`); `None`: to the policy's date.
    pub lock_horizon: Option<std::time::Duration>,
    /// On a tier an object is due to leave, its lock ends this long after the move date
    /// (`lifecycle.hot_margin_days`): the tier's lock covers the hot period only.
    pub hot_margin: std::time::Duration,
    /// This node's search index (`[search]`); `None`: search is off here.
    pub search: Option<Arc<Search>>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            max_object_bytes: 64 << 30,
            max_concurrent_stores: 64,
            version_policy: VersionPolicy::Replace,
            parse_limits: ParseLimits::default(),
            default_tier: "default".to_owned(),
            max_list_items: 1000,
            tenancy: Arc::new(Tenancy::default()),
            policies: None,
            lock_horizon: None,
            hot_margin: lifecycle::HOT_MARGIN,
            search: None,
        }
    }
}

pub struct Archive {
    catalog: Arc<dyn Catalog>,
    tiers: HashMap<String, Arc<dyn BlobStore>>,
    config: ArchiveConfig,
    ingest_slots: Arc<Semaphore>,
    imaging: image::Imaging,
    /// Reads recorded in the audit trail within the last `audit::ACCESS_WINDOW`.
    recent_reads: audit::RecentReads,
    /// Instances read since the last flush (`Archive::flush_accesses`).
    accesses: last_access::Accesses,
}

impl Archive {
    /// `tiers` must contain `config.default_tier`.
    pub fn new(
        catalog: Arc<dyn Catalog>,
        tiers: HashMap<String, Arc<dyn BlobStore>>,
        config: ArchiveConfig,
    ) -> Result<Arc<Self>, ArchiveError> {
        if !tiers.contains_key(&config.default_tier) {
            return Err(ArchiveError::NotFound { what: "default storage tier" });
        }
        let ingest_slots = Arc::new(Semaphore::new(config.max_concurrent_stores.max(1)));
        Ok(Arc::new(Archive {
            catalog,
            tiers,
            config,
            ingest_slots,
            imaging: image::Imaging::new(),
            recent_reads: audit::RecentReads::default(),
            accesses: last_access::Accesses::default(),
        }))
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    pub fn config(&self) -> &ArchiveConfig {
        &self.config
    }

    /// Stores begun and not yet settled (each holds one of `max_concurrent_stores` slots).
    pub fn stores_in_progress(&self) -> usize {
        self.config.max_concurrent_stores.max(1).saturating_sub(self.ingest_slots.available_permits())
    }

    fn default_store(&self) -> &Arc<dyn BlobStore> {
        // Checked in `new`.
        &self.tiers[&self.config.default_tier]
    }

    fn store_of(&self, tier: &str) -> Result<&Arc<dyn BlobStore>, ArchiveError> {
        self.tiers.get(tier).ok_or(ArchiveError::NotFound { what: "storage tier of the instance" })
    }
}

/// The exact object version the catalog recorded for an instance version.
fn blob_ref(row: &vna_catalog::InstanceRow) -> vna_blob::BlobRef<'_> {
    vna_blob::BlobRef::new(&row.blob.key, row.blob.version_id.as_deref())
}
