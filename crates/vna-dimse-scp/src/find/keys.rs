//! The C-FIND keys the archive matches and returns: the Patient Root and Study Root key tables
//! of PS3.4 §C.6.1.1.2–§C.6.1.1.5 and §C.6.2.1.2 restricted to what the catalog holds, with the
//! entity each key describes and the catalog key it matches on.

use super::{InformationModel, QueryLevel};
use vna_catalog::Key;
use vna_dicom::{tags, Tag, VR};

#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyDef {
    pub tag: Tag,
    pub vr: VR,
    /// The entity the attribute describes, as a Patient Root level.
    pub entity: QueryLevel,
    /// The catalog key it matches on; `None`: return-only (a value in the request is matched
    /// universally, PS3.4 §C.2.2.1.3 lets an SCP ignore matching on an optional key).
    pub key: Option<Key>,
    /// Computed over the entity's contents (NumberOf…Related…, ModalitiesInStudy,
    /// SOPClassesInStudy): only a result row of exactly that level carries it.
    pub computed: bool,
}

const fn k(tag: Tag, vr: VR, entity: QueryLevel, key: Option<Key>) -> KeyDef {
    KeyDef { tag, vr, entity, key, computed: false }
}

const fn computed(tag: Tag, vr: VR, entity: QueryLevel, key: Option<Key>) -> KeyDef {
    KeyDef { tag, vr, entity, key, computed: true }
}

use QueryLevel::{Image, Patient, Series, Study};

pub(crate) const KEYS: &[KeyDef] = &[
    // Patient level, PS3.4 Table C.6-1 (Study Root: at the study level, Table C.6-5).
    k(tags::PATIENT_NAME, VR::PN, Patient, Some(Key::PatientName)),
    k(tags::PATIENT_ID, VR::LO, Patient, Some(Key::PatientId)),
    k(tags::ISSUER_OF_PATIENT_ID, VR::LO, Patient, Some(Key::IssuerOfPatientId)),
    k(tags::PATIENT_BIRTH_DATE, VR::DA, Patient, Some(Key::PatientBirthDate)),
    k(tags::PATIENT_SEX, VR::CS, Patient, Some(Key::PatientSex)),
    computed(tags::NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, Patient, None),
    computed(tags::NUMBER_OF_PATIENT_RELATED_SERIES, VR::IS, Patient, None),
    computed(tags::NUMBER_OF_PATIENT_RELATED_INSTANCES, VR::IS, Patient, None),
    // Study level, Table C.6-2.
    k(tags::STUDY_DATE, VR::DA, Study, Some(Key::StudyDate)),
    k(tags::STUDY_TIME, VR::TM, Study, Some(Key::StudyTime)),
    k(tags::ACCESSION_NUMBER, VR::SH, Study, Some(Key::AccessionNumber)),
    k(tags::STUDY_ID, VR::SH, Study, Some(Key::StudyId)),
    k(tags::STUDY_INSTANCE_UID, VR::UI, Study, Some(Key::StudyUid)),
    k(tags::REFERRING_PHYSICIAN_NAME, VR::PN, Study, Some(Key::ReferringPhysicianName)),
    k(tags::STUDY_DESCRIPTION, VR::LO, Study, Some(Key::StudyDescription)),
    computed(tags::MODALITIES_IN_STUDY, VR::CS, Study, Some(Key::ModalitiesInStudy)),
    computed(tags::SOP_CLASSES_IN_STUDY, VR::UI, Study, None),
    computed(tags::NUMBER_OF_STUDY_RELATED_SERIES, VR::IS, Study, None),
    computed(tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, Study, None),
    // Series level, Table C.6-3.
    k(tags::MODALITY, VR::CS, Series, Some(Key::Modality)),
    k(tags::SERIES_NUMBER, VR::IS, Series, Some(Key::SeriesNumber)),
    k(tags::SERIES_INSTANCE_UID, VR::UI, Series, Some(Key::SeriesUid)),
    k(tags::SERIES_DESCRIPTION, VR::LO, Series, Some(Key::SeriesDescription)),
    k(tags::BODY_PART_EXAMINED, VR::CS, Series, Some(Key::BodyPartExamined)),
    k(tags::PERFORMED_PROCEDURE_STEP_START_DATE, VR::DA, Series, Some(Key::PerformedProcedureStepStartDate)),
    k(tags::PERFORMED_PROCEDURE_STEP_START_TIME, VR::TM, Series, None),
    computed(tags::NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, Series, None),
    // Image level, Table C.6-4.
    k(tags::INSTANCE_NUMBER, VR::IS, Image, Some(Key::InstanceNumber)),
    k(tags::SOP_INSTANCE_UID, VR::UI, Image, Some(Key::SopInstanceUid)),
    k(tags::SOP_CLASS_UID, VR::UI, Image, Some(Key::SopClassUid)),
    k(tags::ROWS, VR::US, Image, None),
    k(tags::COLUMNS, VR::US, Image, None),
    k(tags::BITS_ALLOCATED, VR::US, Image, None),
    k(tags::NUMBER_OF_FRAMES, VR::IS, Image, None),
    // Multi-frame organisation (whole-slide images): matched on the catalog's columns.
    k(tags::CONCATENATION_UID, VR::UI, Image, Some(Key::ConcatenationUid)),
    k(tags::SOP_INSTANCE_UID_OF_CONCATENATION_SOURCE, VR::UI, Image, Some(Key::ConcatenationSource)),
    k(tags::IN_CONCATENATION_NUMBER, VR::US, Image, Some(Key::InConcatenationNumber)),
    k(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, Image, Some(Key::DimensionOrganizationType)),
    // Any level (PS3.4 §C.4.1.1.3.2): everything the archive returns is on line.
    k(tags::INSTANCE_AVAILABILITY, VR::CS, Patient, None),
];

pub(crate) fn lookup(tag: Tag) -> Option<&'static KeyDef> {
    KEYS.iter().find(|d| d.tag == tag)
}

impl KeyDef {
    /// The level of the model this key belongs to: patient attributes are study-level keys in
    /// Study Root (PS3.4 §C.6.2.1).
    pub fn level_in(&self, model: InformationModel) -> QueryLevel {
        match (model, self.entity) {
            (InformationModel::StudyRoot, Patient) => Study,
            (_, entity) => entity,
        }
    }

    /// Whether a request at `level` matches on this key: it belongs to that level or above.
    pub fn matched_at(&self, model: InformationModel, level: QueryLevel) -> bool {
        self.key.is_some() && self.level_in(model) <= level
    }

    /// Whether a response at `level` has a value for it.
    pub fn answered_at(&self, model: InformationModel, level: QueryLevel) -> bool {
        if self.computed {
            self.entity == level
        } else {
            self.level_in(model) <= level
        }
    }
}

/// The unique key of a level (PS3.4 §C.6.1.1.1).
pub(crate) fn unique_key(level: QueryLevel) -> Tag {
    match level {
        Patient => tags::PATIENT_ID,
        Study => tags::STUDY_INSTANCE_UID,
        Series => tags::SERIES_INSTANCE_UID,
        Image => tags::SOP_INSTANCE_UID,
    }
}
