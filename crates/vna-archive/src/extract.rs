//! From a parsed object to the catalog's record: the attributes QIDO-RS matches on and
//! returns (PS3.18 §10.6.3 Tables 10.6.3-3 to -5), validated UIDs, frame layout, and DICOM
//! JSON metadata.

use crate::ArchiveError;
use vna_catalog::{
    ByteRange, FrameIndex, InstanceAttrs, MultiFrameAttrs, PatientAttrs, RejectedRef, RejectionNote, SeriesAttrs, StudyAttrs,
};
use vna_dicom::charset::Charset;
use vna_dicom::dataset::DataSet;
use vna_dicom::dataset::Value;
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
    /// What the object rejects, when it is an IOCM rejection note.
    pub rejects: Option<RejectionNote>,
}

/// Key Object Selection Document Storage.
const KEY_OBJECT_SELECTION: &str = "1.2.840.10008.5.1.4.1.1.88.59";

/// Document titles of IOCM rejection notes (PS3.16 CID 7011, scheme DCM): rejected for quality
/// reasons, for patient safety reasons, incorrect modality worklist entry, data retention policy
/// expired.
pub const REJECTION_TITLES: [&str; 4] = ["113001", "113037", "113038", "113039"];

/// Instances one rejection note may name, at most: the note's references are recorded in the
/// registration's own transaction.
pub const MAX_REJECTED_PER_NOTE: usize = 100_000;

/// The items of a sequence element (none when it is absent or not a sequence).
fn items(ds: &DataSet, tag: Tag) -> &[DataSet] {
    match ds.get(tag).map(|e| &e.value) {
        Some(Value::Sequence(items)) => items,
        _ => &[],
    }
}

/// When `ds` is an IHE IOCM rejection note (IHE RAD TF-2 §4.66.4.1.3: a Key Object Selection
/// document whose Concept Name Code Sequence is one of [`REJECTION_TITLES`] in scheme DCM), the
/// instances its Current Requested Procedure Evidence Sequence (0040,A375) names, by study,
/// series (0008,1115) and SOP instance (0008,1199 > 0008,1155). A note that names nothing, or
/// names a UID that is not one, is refused: it could not do what its sender means.
pub fn rejection_note(ds: &DataSet, sop_class: &SopClassUid) -> Result<Option<RejectionNote>, ArchiveError> {
    if sop_class.as_str() != KEY_OBJECT_SELECTION {
        return Ok(None);
    }
    let plain = Charset::default();
    let Some(title) = items(ds, tags::CONCEPT_NAME_CODE_SEQUENCE).first() else { return Ok(None) };
    let code = title.first_text(tags::CODE_VALUE, &plain);
    if title.first_text(tags::CODING_SCHEME_DESIGNATOR, &plain) != "DCM" || !REJECTION_TITLES.contains(&code.as_str()) {
        return Ok(None);
    }
    let mut references = Vec::new();
    for study in items(ds, tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE) {
        let study_uid = uid(study, tags::STUDY_INSTANCE_UID, "StudyInstanceUID", StudyUid::new)?;
        for series in items(study, tags::REFERENCED_SERIES_SEQUENCE) {
            let series_uid = uid(series, tags::SERIES_INSTANCE_UID, "SeriesInstanceUID", SeriesUid::new)?;
            for sop in items(series, tags::REFERENCED_SOP_SEQUENCE) {
                let sop_uid = uid(sop, tags::REFERENCED_SOP_INSTANCE_UID, "ReferencedSOPInstanceUID", SopInstanceUid::new)?;
                if references.len() == MAX_REJECTED_PER_NOTE {
                    return Err(ArchiveError::TooManyObjects { limit: MAX_REJECTED_PER_NOTE as u64 });
                }
                references.push(RejectedRef { study_uid: study_uid.clone(), series_uid: series_uid.clone(), sop_uid });
            }
        }
    }
    if references.is_empty() {
        return Err(ArchiveError::MissingAttribute { attribute: "CurrentRequestedProcedureEvidenceSequence" });
    }
    Ok(Some(RejectionNote { code, references }))
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
        institution_name: t(tags::INSTITUTION_NAME),
        department_name: t(tags::INSTITUTIONAL_DEPARTMENT_NAME),
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
    let rejects = rejection_note(ds, &instance.sop_class_uid)?;
    let metadata = vna_dicom::json::write_json(ds, be, bulk_threshold);
    let tenant = tenant_of(ds, &charset);
    Ok(Extracted { patient, study, series, instance, frames, metadata, tenant, rejects })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vna_dicom::dataset::{Element, Extent};
    use vna_dicom::VR;

    fn text(tag: Tag, vr: VR, v: &str) -> Element {
        let mut bytes = v.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(if vr == VR::UI { 0 } else { b' ' });
        }
        Element { tag, vr, extent: Extent { offset: 0, length: bytes.len() as u64 }, value: Value::Bytes(bytes) }
    }

    fn seq(tag: Tag, items: Vec<DataSet>) -> Element {
        Element { tag, vr: VR::SQ, extent: Extent { offset: 0, length: 0 }, value: Value::Sequence(items) }
    }

    fn item(elements: Vec<Element>) -> DataSet {
        DataSet { elements }
    }

    /// A KOS titled `code` in `scheme`, naming `sops` in one series of one study.
    fn kos(code: &str, scheme: &str, sops: &[&str]) -> DataSet {
        let refs = sops.iter().map(|s| item(vec![text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, s)])).collect();
        let series = item(vec![text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.1"), seq(tags::REFERENCED_SOP_SEQUENCE, refs)]);
        let study = item(vec![text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3"), seq(tags::REFERENCED_SERIES_SEQUENCE, vec![series])]);
        let title = item(vec![text(tags::CODE_VALUE, VR::SH, code), text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme)]);
        item(vec![
            seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![title]),
            seq(tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE, vec![study]),
        ])
    }

    fn class(uid: &str) -> SopClassUid {
        SopClassUid::new(uid).unwrap()
    }

    #[test]
    fn a_rejection_note_names_its_evidence() {
        let note = rejection_note(&kos("113001", "DCM", &["1.2.3.1.1", "1.2.3.1.2"]), &class(KEY_OBJECT_SELECTION)).unwrap().unwrap();
        assert_eq!(note.code, "113001");
        let sops: Vec<&str> = note.references.iter().map(|r| r.sop_uid.as_str()).collect();
        assert_eq!(sops, vec!["1.2.3.1.1", "1.2.3.1.2"]);
        assert!(note.references.iter().all(|r| r.study_uid.as_str() == "1.2.3" && r.series_uid.as_str() == "1.2.3.1"));
        for code in REJECTION_TITLES {
            assert!(rejection_note(&kos(code, "DCM", &["1.2.3.1.1"]), &class(KEY_OBJECT_SELECTION)).unwrap().is_some());
        }
    }

    #[test]
    fn other_key_objects_are_not_rejections() {
        // Of Interest (113000), a title in another scheme, another SOP class.
        assert!(rejection_note(&kos("113000", "DCM", &["1.2.3.1.1"]), &class(KEY_OBJECT_SELECTION)).unwrap().is_none());
        assert!(rejection_note(&kos("113001", "99LOCAL", &["1.2.3.1.1"]), &class(KEY_OBJECT_SELECTION)).unwrap().is_none());
        assert!(rejection_note(&kos("113001", "DCM", &["1.2.3.1.1"]), &class("1.2.840.10008.5.1.4.1.1.88.11")).unwrap().is_none());
        assert!(rejection_note(&DataSet::default(), &class(KEY_OBJECT_SELECTION)).unwrap().is_none());
    }

    #[test]
    fn a_rejection_note_that_cannot_be_applied_is_refused() {
        let empty = rejection_note(&kos("113001", "DCM", &[]), &class(KEY_OBJECT_SELECTION)).unwrap_err();
        assert!(matches!(empty, ArchiveError::MissingAttribute { attribute: "CurrentRequestedProcedureEvidenceSequence" }), "{empty:?}");
        let bad = rejection_note(&kos("113001", "DCM", &["1.2.x"]), &class(KEY_OBJECT_SELECTION)).unwrap_err();
        assert!(matches!(bad, ArchiveError::InvalidUid { attribute: "ReferencedSOPInstanceUID", .. }), "{bad:?}");
    }
}
