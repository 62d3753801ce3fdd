//! The C-FIND keys the archive matches and returns: the Patient Root and Study Root key tables
//! of PS3.4 §C.6.1.1.2–§C.6.1.1.5 and §C.6.2.1.2 restricted to what the catalog holds, with the
//! entity each key describes; whether and how it is matched is the archive's one table
//! (`vna_archive::query`).

use super::{InformationModel, QueryLevel};
use vna_archive::query::{matching_key, MatchingKey};
use vna_dicom::{tags, Tag, VR};

#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyDef {
    pub tag: Tag,
    pub vr: VR,
    /// The entity the attribute describes, as a Patient Root level.
    pub entity: QueryLevel,
    /// Computed over the entity's contents (NumberOf…Related…, ModalitiesInStudy,
    /// SOPClassesInStudy): only a result row of exactly that level carries it.
    pub computed: bool,
}

const fn k(tag: Tag, vr: VR, entity: QueryLevel) -> KeyDef {
    KeyDef { tag, vr, entity, computed: false }
}

const fn computed(tag: Tag, vr: VR, entity: QueryLevel) -> KeyDef {
    KeyDef { tag, vr, entity, computed: true }
}

use QueryLevel::{Image, Patient, Series, Study};

pub(crate) const KEYS: &[KeyDef] = &[
    // Patient level, PS3.4 Table C.6-1 (Study Root: at the study level, Table C.6-5).
    k(tags::PATIENT_NAME, VR::PN, Patient),
    k(tags::PATIENT_ID, VR::LO, Patient),
    k(tags::ISSUER_OF_PATIENT_ID, VR::LO, Patient),
    k(tags::PATIENT_BIRTH_DATE, VR::DA, Patient),
    k(tags::PATIENT_SEX, VR::CS, Patient),
    computed(tags::NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, Patient),
    computed(tags::NUMBER_OF_PATIENT_RELATED_SERIES, VR::IS, Patient),
    computed(tags::NUMBER_OF_PATIENT_RELATED_INSTANCES, VR::IS, Patient),
    // Study level, Table C.6-2.
    k(tags::STUDY_DATE, VR::DA, Study),
    k(tags::STUDY_TIME, VR::TM, Study),
    k(tags::ACCESSION_NUMBER, VR::SH, Study),
    k(tags::STUDY_ID, VR::SH, Study),
    k(tags::STUDY_INSTANCE_UID, VR::UI, Study),
    k(tags::REFERRING_PHYSICIAN_NAME, VR::PN, Study),
    k(tags::STUDY_DESCRIPTION, VR::LO, Study),
    computed(tags::MODALITIES_IN_STUDY, VR::CS, Study),
    computed(tags::SOP_CLASSES_IN_STUDY, VR::UI, Study),
    computed(tags::NUMBER_OF_STUDY_RELATED_SERIES, VR::IS, Study),
    computed(tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, Study),
    // Series level, Table C.6-3.
    k(tags::MODALITY, VR::CS, Series),
    k(tags::SERIES_NUMBER, VR::IS, Series),
    k(tags::SERIES_INSTANCE_UID, VR::UI, Series),
    k(tags::SERIES_DESCRIPTION, VR::LO, Series),
    k(tags::BODY_PART_EXAMINED, VR::CS, Series),
    k(tags::PERFORMED_PROCEDURE_STEP_START_DATE, VR::DA, Series),
    k(tags::PERFORMED_PROCEDURE_STEP_START_TIME, VR::TM, Series),
    computed(tags::NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, Series),
    // Image level, Table C.6-4.
    k(tags::INSTANCE_NUMBER, VR::IS, Image),
    k(tags::SOP_INSTANCE_UID, VR::UI, Image),
    k(tags::SOP_CLASS_UID, VR::UI, Image),
    k(tags::ROWS, VR::US, Image),
    k(tags::COLUMNS, VR::US, Image),
    k(tags::BITS_ALLOCATED, VR::US, Image),
    k(tags::NUMBER_OF_FRAMES, VR::IS, Image),
    // Multi-frame organisation (whole-slide images): matched on the catalog's columns.
    k(tags::CONCATENATION_UID, VR::UI, Image),
    k(tags::SOP_INSTANCE_UID_OF_CONCATENATION_SOURCE, VR::UI, Image),
    k(tags::IN_CONCATENATION_NUMBER, VR::US, Image),
    k(tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, Image),
    k(tags::TOTAL_PIXEL_MATRIX_COLUMNS, VR::UL, Image),
    k(tags::TOTAL_PIXEL_MATRIX_ROWS, VR::UL, Image),
    // Any level (PS3.4 §C.4.1.1.3.2): everything the archive returns is on line.
    k(tags::INSTANCE_AVAILABILITY, VR::CS, Patient),
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

    /// The archive's matching key for this attribute; `None`: return-only (a value in the
    /// request is matched universally, PS3.4 §C.2.2.1.3 lets an SCP ignore matching on an
    /// optional key). The archive's table decides, for C-FIND as for QIDO-RS.
    pub fn matching(&self) -> Option<&'static MatchingKey> {
        matching_key(self.tag)
    }

    /// Whether a request at `level` matches on this key: it belongs to that level or above.
    pub fn matched_at(&self, model: InformationModel, level: QueryLevel) -> bool {
        self.matching().is_some() && self.level_in(model) <= level
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
