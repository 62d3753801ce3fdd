//! Plain data types that cross the catalog boundary. No SQL here.

use vna_dicom::uid::{SeriesUid, SopClassUid, SopInstanceUid, StudyUid};

/// Patient-level attributes as decoded from the data set (UTF-8; empty string = absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientAttrs {
    pub patient_id: String,
    pub issuer_of_patient_id: String,
    /// PN value as in the data set, decoded to UTF-8 (`Family^Given^Middle^Prefix^Suffix`).
    pub patient_name: String,
    /// DA, `YYYYMMDD`.
    pub patient_birth_date: String,
    pub patient_sex: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyAttrs {
    pub study_uid: StudyUid,
    /// DA, `YYYYMMDD` (empty when absent).
    pub study_date: String,
    /// TM, `HHMMSS[.F{1,6}]` (empty when absent).
    pub study_time: String,
    pub accession_number: String,
    pub study_id: String,
    pub referring_physician_name: String,
    pub study_description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesAttrs {
    pub series_uid: SeriesUid,
    pub modality: String,
    pub series_number: Option<i64>,
    pub series_description: String,
    pub body_part_examined: String,
    pub performed_procedure_step_start_date: String,
    pub performed_procedure_step_start_time: String,
    /// Institution Name (0008,0080) and Institutional Department Name (0008,1040).
    pub institution_name: String,
    pub department_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceAttrs {
    pub sop_uid: SopInstanceUid,
    pub sop_class_uid: SopClassUid,
    pub instance_number: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub bits_allocated: Option<i64>,
    pub number_of_frames: Option<i64>,
    /// Transfer syntax UID of the stored bytes.
    pub transfer_syntax: String,
    pub multi_frame: MultiFrameAttrs,
}

/// How a multi-frame image is organised (whole-slide images, enhanced objects): what a
/// viewer needs to find the parts of a concatenation and the levels of a slide.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiFrameAttrs {
    /// Concatenation UID (0020,9161).
    pub concatenation_uid: Option<String>,
    /// SOP Instance UID of Concatenation Source (0020,0242).
    pub concatenation_source: Option<String>,
    /// In-concatenation Number (0020,9162).
    pub in_concatenation_number: Option<i64>,
    /// Dimension Organization Type (0020,9311): TILED_FULL, TILED_SPARSE, 3D…
    pub dimension_organization_type: Option<String>,
    /// Total Pixel Matrix Columns / Rows (0048,0006 / 0048,0007).
    pub total_pixel_matrix_columns: Option<i64>,
    pub total_pixel_matrix_rows: Option<i64>,
}

/// Where and what the stored bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    /// Named tier (blob store) holding the object, e.g. `"default"`.
    pub tier: String,
    /// Opaque key inside that tier. Never contains UIDs or patient data; never reused.
    pub key: String,
    /// Store version id when the store versions objects (S3), else `None`.
    pub version_id: Option<String>,
    pub size: u64,
    /// Lower-case hex SHA-256 of the stored bytes.
    pub sha256: String,
}

/// How the frames of a multi-frame (or single-frame) image are laid out in the stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameIndex {
    /// No pixel data (SR, PDF, presentation state…) or frames cannot be addressed.
    None,
    /// Native pixel data: frame `n` (1-based) is `first_offset + (n-1)*frame_length`, length
    /// `frame_length`.
    Native { first_offset: u64, frame_length: u64, count: u32 },
    /// Encapsulated pixel data: one or more byte ranges ("pieces", fragment values without item
    /// headers) per frame, in order.
    Encapsulated { frames: Vec<Vec<ByteRange>> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub length: u64,
}

/// The flush of a registration's object, possibly still running when the registration is
/// handed to the catalog ([`crate::Catalog::register_after`]): the writer runs the
/// registration's statements meanwhile and waits for it before the commit that records the
/// row. Cloning shares the one flush; its outcome is kept for every waiter.
#[derive(Clone, Default)]
pub struct Durable(Option<SharedFlush>);

/// One flush, awaited by every clone of a [`Durable`]; its outcome is kept.
type SharedFlush = futures::future::Shared<futures::future::BoxFuture<'static, Result<(), std::sync::Arc<str>>>>;

impl Durable {
    /// An object durable already (its store's commit was its flush).
    pub fn ready() -> Durable {
        Durable(None)
    }

    /// An object durable once `flush` ends well; its error says why not (no PHI: keys at most).
    pub fn after(flush: impl std::future::Future<Output = Result<(), String>> + Send + 'static) -> Durable {
        use futures::FutureExt;
        Durable(Some(flush.map(|r| r.map_err(std::sync::Arc::from)).boxed().shared()))
    }

    /// Waits for the flush (at once when ready or already ended).
    pub async fn wait(&self) -> Result<(), std::sync::Arc<str>> {
        match &self.0 {
            None => Ok(()),
            Some(flush) => flush.clone().await,
        }
    }
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Durable(flushing)" } else { "Durable(ready)" })
    }
}

/// Everything ingest hands over for one stored object.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub patient: PatientAttrs,
    pub study: StudyAttrs,
    pub series: SeriesAttrs,
    pub instance: InstanceAttrs,
    pub blob: BlobLocation,
    pub frames: FrameIndex,
    /// The instance's DICOM JSON (PS3.18 Annex F) without pixel data, bulk values referenced
    /// internally; served by WADO-RS metadata. Opaque to the catalog.
    pub metadata: String,
    /// The tenant (or `tenant/department`) the study belongs to, decided at ingest. A study
    /// keeps the tenant of its first instance: a registration naming another one is refused.
    pub tenant: String,
    /// The audit event of this store, recorded in the registration's transaction (its outcome
    /// set to a minor failure when the catalog refuses the registration).
    pub audit: Option<crate::AuditEvent>,
    /// Set when this object is an IHE IOCM rejection note: the instances it hides, recorded and
    /// applied in the registration's transaction.
    pub rejects: Option<RejectionNote>,
}

/// What an IHE IOCM rejection note (a Key Object Selection document, IHE RAD TF-2 §4.66,
/// titled from CID 7011) rejects: every instance of its Current Requested Procedure Evidence
/// Sequence. Applied only to instances of the named study within the note's own tenant;
/// instances not received yet are hidden when they arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionNote {
    /// The note's title code: 113001 (quality), 113037 (patient safety), 113038 (incorrect
    /// modality worklist entry), 113039 (data retention policy expired).
    pub code: String,
    pub references: Vec<RejectedRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRef {
    pub study_uid: StudyUid,
    pub series_uid: SeriesUid,
    pub sop_uid: SopInstanceUid,
}

/// The rejection hiding an instance version: the note's title code and when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: String,
    pub at_ms: i64,
}

/// One rejected SOP Instance UID as the catalog remembers it (for administrators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionRecord {
    pub sop_uid: String,
    pub study_uid: String,
    pub series_uid: String,
    pub tenant: String,
    pub code: String,
    pub note_sop_uid: String,
    pub at_ms: i64,
    /// Whether an instance with this UID is in the catalog (a rejection may come first).
    pub received: bool,
}

/// What to do when a SOP Instance UID arrives again with different bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionPolicy {
    /// Refuse the new object; nothing changes.
    Reject,
    /// Record the new object as a non-current version; the existing one stays current.
    KeepBoth,
    /// The new object becomes current; the previous one stays recorded as a prior version.
    Replace,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RegisterOutcome {
    /// A new row (first version, or a new current version under `Replace`).
    Stored { instance: InstanceRow, change_seq: i64, replaced_previous: bool },
    /// Same SOP Instance UID and same SHA-256 as the current version: nothing was written.
    /// The caller's freshly written blob is now unreferenced and should be deleted.
    Duplicate { existing: InstanceRow },
    /// Recorded as a non-current version (`KeepBoth`).
    StoredAsPriorVersion { instance: InstanceRow, change_seq: i64 },
    /// `Reject` and the bytes differ from the current version: nothing was written.
    Conflict { existing: InstanceRow },
    /// The study is recorded under another tenant than the one this registration names: a
    /// study never straddles tenants. Nothing was written.
    TenantConflict,
}

/// A catalogued instance version with the attributes of its series, study and patient as they
/// are now in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub pk: i64,
    pub patient: PatientAttrs,
    pub study: StudyAttrs,
    pub series: SeriesAttrs,
    pub instance: InstanceAttrs,
    pub blob: BlobLocation,
    /// 1 for the first version of this SOP Instance UID, then 2, 3, …
    pub version: i32,
    pub is_current: bool,
    /// Unix milliseconds when this version was committed.
    pub stored_at_ms: i64,
    /// The tenant of the instance's study.
    pub tenant: String,
    /// The IOCM rejection hiding this version, if any (seen only by readers whose visibility
    /// includes rejected instances).
    pub rejection: Option<Rejection>,
    /// When it was last read, as recorded by the nodes' batched access tracking; `None`: not
    /// read since it arrived.
    pub last_access_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StudyRow {
    pub patient: PatientAttrs,
    pub study: StudyAttrs,
    /// Distinct modalities of the study's current instances, sorted.
    pub modalities_in_study: Vec<String>,
    /// Distinct SOP classes of the study's current instances, sorted.
    pub sop_classes_in_study: Vec<String>,
    pub number_of_series: i64,
    pub number_of_instances: i64,
}

/// A patient with at least one current instance, and its counters over current instances
/// (NumberOfPatientRelatedStudies/Series/Instances, PS3.4 §C.3.1 and §C.6.1.1.2).
#[derive(Debug, Clone, PartialEq)]
pub struct PatientRow {
    pub patient: PatientAttrs,
    pub number_of_studies: i64,
    pub number_of_series: i64,
    pub number_of_instances: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub patient: PatientAttrs,
    pub study: StudyAttrs,
    pub series: SeriesAttrs,
    pub number_of_instances: i64,
}

/// The tenant of studies stored before tenancy, and of every study until rules assign others
/// (the column's default in migration 0004).
pub const DEFAULT_TENANT: &str = "default";

/// Which studies a reader may see. Every read of the catalog that can return patient data takes
/// one and applies it as SQL conditions in the statement itself, so counts, paging and every
/// level see the same subset; nothing is filtered afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Visibility {
    /// `None`: every tenant. `Some(list)`: studies whose tenant is one of these or below one of
    /// them (`hug` covers `hug/radiology`). An empty list sees nothing.
    pub tenants: Option<Vec<String>>,
    /// Only this study, series or instance (a signed link), within `tenants`.
    pub only: Option<Scope>,
    /// Also instances hidden by an IOCM rejection note: administrators' listings and the
    /// archive's own work (ingest checks, verification, lifecycle), never clinical reads.
    pub rejected: bool,
}

impl Visibility {
    /// Everything: the archive's own work (ingest checks, verification, jobs).
    pub const ALL: Visibility = Visibility { tenants: None, only: None, rejected: true };

    /// Whether a study of `tenant` is visible (the same rule as the SQL).
    pub fn covers_tenant(&self, tenant: &str) -> bool {
        match &self.tenants {
            None => true,
            Some(grants) => grants.iter().any(|g| tenant_within(tenant, g)),
        }
    }
}

/// `tenant` is `grant` or below it (`grant/…`).
pub fn tenant_within(tenant: &str, grant: &str) -> bool {
    tenant == grant || tenant.strip_prefix(grant).is_some_and(|rest| rest.starts_with('/'))
}

/// A retrieval scope: a study, a series of it, or one instance of that series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub study: StudyUid,
    pub series: Option<SeriesUid>,
    pub instance: Option<SopInstanceUid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new current instance version was stored.
    InstanceStored,
    /// A new current version replaced a previous one.
    InstanceReplaced,
    /// A non-current version was recorded (`KeepBoth`).
    PriorVersionRecorded,
    /// An IOCM rejection note hid this version (it is no longer served to clinical readers).
    InstanceRejected,
    /// The instance's retention ended and a lifecycle rule expired it: every version is gone
    /// from the catalog (a tombstone remains) and its objects are destroyed.
    InstanceExpired,
    /// The current version's object now lives on another tier (the same bytes).
    InstanceMoved,
    /// A report was added to the study (no instance: the series and SOP UIDs are empty).
    ReportAdded,
    /// Every node's search index is to be rebuilt from the catalog (no study).
    SearchReindex,
}

impl ChangeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::InstanceStored => "instance-stored",
            ChangeKind::InstanceReplaced => "instance-replaced",
            ChangeKind::PriorVersionRecorded => "prior-version-recorded",
            ChangeKind::InstanceRejected => "instance-rejected",
            ChangeKind::InstanceExpired => "instance-expired",
            ChangeKind::InstanceMoved => "instance-moved",
            ChangeKind::ReportAdded => "report-added",
            ChangeKind::SearchReindex => "search-reindex",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Strictly increasing, in commit order: a consumer that has seen `seq` has seen every
    /// change with a smaller one.
    pub seq: i64,
    pub kind: ChangeKind,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub at_ms: i64,
}
