//! The query model shared by QIDO-RS and C-FIND: which key, matched how
//! (PS3.4 §C.2.2.2 matching types). Front ends parse their wire form into this; backends
//! translate it to SQL.

/// Query/retrieve level of the result rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// C-FIND only (PS3.4 §C.6.1.1.2): QIDO-RS has no patient resource.
    Patient,
    Study,
    Series,
    Instance,
}

/// Attributes the catalog can match on. Each is served by an index in every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    PatientId,
    IssuerOfPatientId,
    PatientName,
    PatientBirthDate,
    PatientSex,
    StudyUid,
    StudyDate,
    StudyTime,
    AccessionNumber,
    StudyId,
    ReferringPhysicianName,
    StudyDescription,
    /// Matches a study (or its series/instances) when any series of the study has one of the
    /// given modalities.
    ModalitiesInStudy,
    SeriesUid,
    Modality,
    SeriesNumber,
    SeriesDescription,
    BodyPartExamined,
    PerformedProcedureStepStartDate,
    SopInstanceUid,
    SopClassUid,
    InstanceNumber,
    ConcatenationUid,
    ConcatenationSource,
    InConcatenationNumber,
    DimensionOrganizationType,
    TotalPixelMatrixColumns,
    TotalPixelMatrixRows,
}

/// PS3.4 §C.2.2.2 matching types, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// Single value matching: exact, case-sensitive (PN too unless `fuzzy`).
    Single(String),
    /// Wildcard matching: `*` any run of characters, `?` exactly one character. Any other
    /// character (including `%` and `_`) is literal.
    Wildcard(String),
    /// Range matching on DA/TM/DT values or integers: inclusive bounds, either may be open.
    Range { from: Option<String>, to: Option<String> },
    /// List of UID (or, for ModalitiesInStudy, code-string) values: matches any of them.
    List(Vec<String>),
    /// PN fuzzy matching (`fuzzymatching=true`): each query word must be a case- and
    /// accent-insensitive prefix of some name component (see `vna_dicom::pn`).
    Fuzzy(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub key: Key,
    pub matcher: Matcher,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub level: Level,
    /// All filters must match (AND).
    pub filters: Vec<Filter>,
    /// `None` = no limit. Front ends apply their own maximum before calling.
    pub limit: Option<u32>,
    pub offset: u32,
}
