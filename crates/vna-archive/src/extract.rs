//! From a parsed object to the catalog's record: the attributes QIDO-RS matches on and
//! returns (PS3.18 §10.6.3 Tables 10.6.3-3 to -5), validated UIDs, frame layout, and DICOM
//! JSON metadata.

use crate::ArchiveError;
use vna_catalog::{ByteRange, FrameIndex, InstanceAttrs, MultiFrameAttrs, PatientAttrs, SeriesAttrs, StudyAttrs};
use vna_dicom::charset::Charset;
use vna_dicom::dataset::DataSet;
use vna_dicom::frames::{frame_layout, FrameLayout};
use vna_dicom::parse::ParsedObject;
use vna_dicom::tags;
use vna_dicom::uid::{SeriesUid, SopClassUid, SopInstanceUid, StudyUid, UidError};
use vna_dicom::Tag;

/// The catalog-facing description of one object, without its blob location.
pub struct Extracted {
    pub patient: PatientAttrs,
    pub study: StudyAttrs,
    pub series: SeriesAttrs,
    pub instance: InstanceAttrs,
    pub frames: FrameIndex,
    pub metadata: String,
    /// Decided by the archive's tenancy rules.
    pub tenant: String,
}

fn uid<T>(ds: &DataSet, tag: Tag, attribute: &'static str, make: fn(&str) -> Result<T, UidError>) -> Result<T, ArchiveError> {
    let raw = ds.first_text(tag, &Charset::default());
    if raw.is_empty() {
        return Err(ArchiveError::MissingAttribute { attribute });
    }
    make(&raw).map_err(|source| ArchiveError::InvalidUid { attribute, source })
}

/// `tenant_of` gives the object's tenant from its data set (text decoded with its charset).
pub fn extract(
    obj: &ParsedObject,
    bulk_threshold: u64,
    tenant_of: impl FnOnce(&DataSet, &Charset) -> String,
) -> Result<Extracted, ArchiveError> {
    let ds = &obj.dataset;
    let be = obj.big_endian;
    let charset =
        ds.text(tags::SPECIFIC_CHARACTER_SET, &Charset::default()).map(|s| Charset::from_specific_character_set(&s)).unwrap_or_default();
    let t = |tag: Tag| ds.first_text(tag, &charset);
    // PN keeps all its groups (`=`) but only its first value.
    let pn = |tag: Tag| ds.text(tag, &charset).map(|s| s.split('\\').next().unwrap_or("").trim_end().to_owned()).unwrap_or_default();

    let instance = InstanceAttrs {
        sop_uid: uid(ds, tags::SOP_INSTANCE_UID, "SOPInstanceUID", SopInstanceUid::new)?,
        sop_class_uid: uid(ds, tags::SOP_CLASS_UID, "SOPClassUID", SopClassUid::new)?,
        instance_number: ds.int(tags::INSTANCE_NUMBER, be),
        rows: ds.int(tags::ROWS, be),
        columns: ds.int(tags::COLUMNS, be),
        bits_allocated: ds.int(tags::BITS_ALLOCATED, be),
        number_of_frames: ds.int(tags::NUMBER_OF_FRAMES, be),
        transfer_syntax: obj.transfer_syntax.clone(),
        multi_frame: MultiFrameAttrs {
            // Only well-formed UIDs are indexed; the attribute stays in the metadata either way.
            concatenation_uid: Some(t(tags::CONCATENATION_UID)).filter(|u| vna_dicom::uid::validate(u).is_ok()),
            concatenation_source: Some(t(tags::SOP_INSTANCE_UID_OF_CONCATENATION_SOURCE)).filter(|u| vna_dicom::uid::validate(u).is_ok()),
            in_concatenation_number: ds.int(tags::IN_CONCATENATION_NUMBER, be),
            dimension_organization_type: Some(t(tags::DIMENSION_ORGANIZATION_TYPE)).filter(|s| !s.is_empty()),
            total_pixel_matrix_columns: ds.int(tags::TOTAL_PIXEL_MATRIX_COLUMNS, be),
            total_pixel_matrix_rows: ds.int(tags::TOTAL_PIXEL_MATRIX_ROWS, be),
        },
    };
    let study = StudyAttrs {
        study_uid: uid(ds, tags::STUDY_INSTANCE_UID, "StudyInstanceUID", StudyUid::new)?,
        study_date: t(tags::STUDY_DATE),
        study_time: t(tags::STUDY_TIME),
        accession_number: t(tags::ACCESSION_NUMBER),
        study_id: t(tags::STUDY_ID),
        referring_physician_name: pn(tags::REFERRING_PHYSICIAN_NAME),
        study_description: t(tags::STUDY_DESCRIPTION),
    };
    let series = SeriesAttrs {
        series_uid: uid(ds, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID", SeriesUid::new)?,
        modality: t(tags::MODALITY),
        series_number: ds.int(tags::SERIES_NUMBER, be),
        series_description: t(tags::SERIES_DESCRIPTION),
        body_part_examined: t(tags::BODY_PART_EXAMINED),
        performed_procedure_step_start_date: t(tags::PERFORMED_PROCEDURE_STEP_START_DATE),
        performed_procedure_step_start_time: t(tags::PERFORMED_PROCEDURE_STEP_START_TIME),
    };
    let patient = PatientAttrs {
        patient_id: t(tags::PATIENT_ID),
        issuer_of_patient_id: t(tags::ISSUER_OF_PATIENT_ID),
        patient_name: pn(tags::PATIENT_NAME),
        patient_birth_date: t(tags::PATIENT_BIRTH_DATE),
        patient_sex: t(tags::PATIENT_SEX),
    };
    let frames = match frame_layout(obj) {
        FrameLayout::None => FrameIndex::None,
        FrameLayout::Native { first_offset, frame_length, count } => FrameIndex::Native { first_offset, frame_length, count },
        FrameLayout::Encapsulated(frames) => FrameIndex::Encapsulated {
            frames: frames
                .into_iter()
                .map(|pieces| pieces.into_iter().map(|e| ByteRange { offset: e.offset, length: e.length }).collect())
                .collect(),
        },
    };
    let metadata = vna_dicom::json::to_json(ds, be, bulk_threshold).to_string();
    let tenant = tenant_of(ds, &charset);
    Ok(Extracted { patient, study, series, instance, frames, metadata, tenant })
}
