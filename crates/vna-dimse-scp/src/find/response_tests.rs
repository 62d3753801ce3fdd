//! Row → response identifier, read back through the bare data set parser in every encoding:
//! exactly the requested keys, the archive's values, zero-length for what it cannot answer.

use super::test_support::*;
use super::*;
use vna_dicom::charset::Charset;
use vna_dicom::dataset::{DataSet, Value};
use vna_dicom::write::Items;
use vna_dicom::{tags, ts};

const SYNTAXES: [(&str, ResponseEncoding); 3] = [
    (ts::EXPLICIT_VR_LITTLE_ENDIAN, ResponseEncoding::ExplicitLittleEndian),
    (ts::IMPLICIT_VR_LITTLE_ENDIAN, ResponseEncoding::ImplicitLittleEndian),
    (ts::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, ResponseEncoding::DeflatedExplicitLittleEndian),
];

/// Builds the response in every encoding, checks they parse to the same data set, returns it.
fn respond(req: &FindRequest, row: FindRow<'_>, ae: Option<&str>) -> DataSet {
    let mut out: Option<DataSet> = None;
    for (syntax, encoding) in SYNTAXES {
        assert_eq!(ResponseEncoding::for_transfer_syntax(syntax), Some(encoding));
        let ds = parse_response(&response_identifier(req, row, ae, encoding), syntax);
        let values: Vec<_> = ds.elements.iter().map(|e| (e.tag, e.value.clone())).collect();
        if let Some(first) = &out {
            let first: Vec<_> = first.elements.iter().map(|e| (e.tag, e.value.clone())).collect();
            assert_eq!(values, first, "{syntax}");
        }
        out = Some(ds);
    }
    out.expect("three encodings")
}

fn text(ds: &DataSet, tag: Tag) -> String {
    ds.text(tag, &Charset::from_specific_character_set("ISO_IR 192")).unwrap_or_else(|| panic!("{tag:?} missing"))
}

fn tags_of(ds: &DataSet) -> Vec<Tag> {
    ds.elements.iter().map(|e| e.tag).collect()
}

fn zero_length(ds: &DataSet, tag: Tag) -> bool {
    matches!(&ds.get(tag).map(|e| &e.value), Some(Value::Bytes(b)) if b.is_empty())
}

#[test]
fn patient_level() {
    use tags::*;
    let identifier = qr("PATIENT")
        .str(PATIENT_NAME, VR::PN, "M*")
        .str(PATIENT_ID, VR::LO, "")
        .str(NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, "")
        .str(NUMBER_OF_PATIENT_RELATED_SERIES, VR::IS, "")
        .str(NUMBER_OF_PATIENT_RELATED_INSTANCES, VR::IS, "")
        .str(STUDY_DATE, VR::DA, "")
        .str(INSTITUTION_NAME, VR::LO, "")
        .sequence(REFERENCED_STUDY_SEQUENCE, vec![Items::new()], false);
    let req = find(PATIENT_ROOT_FIND, identifier).expect("request");
    let row = patient_row();
    let ds = respond(&req, FindRow::Patient(&row), Some("VNA"));
    let mut want = vec![
        SPECIFIC_CHARACTER_SET,
        QUERY_RETRIEVE_LEVEL,
        RETRIEVE_AE_TITLE,
        PATIENT_NAME,
        PATIENT_ID,
        NUMBER_OF_PATIENT_RELATED_STUDIES,
        NUMBER_OF_PATIENT_RELATED_SERIES,
        NUMBER_OF_PATIENT_RELATED_INSTANCES,
        STUDY_DATE,
        INSTITUTION_NAME,
        REFERENCED_STUDY_SEQUENCE,
    ];
    want.sort();
    assert_eq!(tags_of(&ds), want, "exactly the requested keys and the three fixed ones");
    assert_eq!(text(&ds, SPECIFIC_CHARACTER_SET), "ISO_IR 192");
    assert_eq!(text(&ds, QUERY_RETRIEVE_LEVEL), "PATIENT");
    assert_eq!(text(&ds, RETRIEVE_AE_TITLE), "VNA");
    assert_eq!(text(&ds, PATIENT_NAME), "Müller^Jürgen");
    assert_eq!(text(&ds, PATIENT_ID), "PAT-0001");
    assert_eq!(ds.int(NUMBER_OF_PATIENT_RELATED_STUDIES, false), Some(2));
    assert_eq!(ds.int(NUMBER_OF_PATIENT_RELATED_SERIES, false), Some(3));
    assert_eq!(ds.int(NUMBER_OF_PATIENT_RELATED_INSTANCES, false), Some(7));
    assert!(zero_length(&ds, STUDY_DATE), "below the level");
    assert!(zero_length(&ds, INSTITUTION_NAME), "not catalogued");
    let seq = ds.get(REFERENCED_STUDY_SEQUENCE).expect("sequence");
    assert_eq!((seq.vr, &seq.value), (VR::SQ, &Value::Sequence(Vec::new())), "sequence matching is universal");
    // Without an AE title, none is sent.
    let ds = respond(&req, FindRow::Patient(&row), None);
    assert!(ds.get(RETRIEVE_AE_TITLE).is_none());
}

#[test]
fn study_level_study_root() {
    use tags::*;
    let identifier = qr("STUDY")
        .str(PATIENT_NAME, VR::PN, "")
        .str(STUDY_INSTANCE_UID, VR::UI, "")
        .str(STUDY_DATE, VR::DA, "20240101-")
        .str(STUDY_TIME, VR::TM, "")
        .str(ACCESSION_NUMBER, VR::SH, "")
        .str(MODALITIES_IN_STUDY, VR::CS, "CT\\MR")
        .str(SOP_CLASSES_IN_STUDY, VR::UI, "")
        .str(NUMBER_OF_STUDY_RELATED_SERIES, VR::IS, "")
        .str(NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, "")
        .str(NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, "")
        .str(INSTANCE_AVAILABILITY, VR::CS, "");
    let req = find(STUDY_ROOT_FIND, identifier).expect("request");
    let row = study_row();
    let ds = respond(&req, FindRow::Study(&row), Some("VNA"));
    assert_eq!(text(&ds, QUERY_RETRIEVE_LEVEL), "STUDY");
    assert_eq!(text(&ds, PATIENT_NAME), "Müller^Jürgen", "patient attributes are study keys in Study Root");
    assert_eq!(text(&ds, STUDY_INSTANCE_UID), "1.2.9.1");
    assert_eq!(text(&ds, STUDY_DATE), "20240102");
    assert_eq!(text(&ds, STUDY_TIME), "101500");
    assert_eq!(text(&ds, ACCESSION_NUMBER), "ACC-0001");
    assert_eq!(text(&ds, MODALITIES_IN_STUDY), "CT\\SR", "the study's modalities, not the request's");
    assert_eq!(text(&ds, SOP_CLASSES_IN_STUDY), vna_catalog::conformance::CT_IMAGE);
    assert_eq!(ds.int(NUMBER_OF_STUDY_RELATED_SERIES, false), Some(2));
    assert_eq!(ds.int(NUMBER_OF_STUDY_RELATED_INSTANCES, false), Some(5));
    assert!(zero_length(&ds, NUMBER_OF_PATIENT_RELATED_STUDIES), "no patient counters at the study level");
    assert_eq!(text(&ds, INSTANCE_AVAILABILITY), "ONLINE");
    assert_eq!(ds.get(STUDY_INSTANCE_UID).map(|e| e.vr), Some(VR::UI));
}

#[test]
fn series_level_patient_root() {
    use tags::*;
    let identifier = qr("SERIES")
        .str(PATIENT_ID, VR::LO, "PAT-0001")
        .str(STUDY_INSTANCE_UID, VR::UI, "1.2.9.1")
        .str(SERIES_INSTANCE_UID, VR::UI, "")
        .str(MODALITY, VR::CS, "CT")
        .str(SERIES_NUMBER, VR::IS, "")
        .str(PERFORMED_PROCEDURE_STEP_START_TIME, VR::TM, "")
        .str(NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, "")
        .str(MODALITIES_IN_STUDY, VR::CS, "")
        .str(SOP_INSTANCE_UID, VR::UI, "");
    let req = find(PATIENT_ROOT_FIND, identifier).expect("request");
    let row = series_row();
    let ds = respond(&req, FindRow::Series(&row), None);
    assert_eq!(text(&ds, QUERY_RETRIEVE_LEVEL), "SERIES");
    assert_eq!(text(&ds, PATIENT_ID), "PAT-0001");
    assert_eq!(text(&ds, STUDY_INSTANCE_UID), "1.2.9.1");
    assert_eq!(text(&ds, SERIES_INSTANCE_UID), "1.2.9.1.1");
    assert_eq!(text(&ds, MODALITY), "CT");
    assert_eq!(ds.int(SERIES_NUMBER, false), Some(1));
    assert_eq!(text(&ds, PERFORMED_PROCEDURE_STEP_START_TIME), "101000");
    assert_eq!(ds.int(NUMBER_OF_SERIES_RELATED_INSTANCES, false), Some(4));
    assert!(zero_length(&ds, MODALITIES_IN_STUDY), "a study counter, not on series rows");
    assert!(zero_length(&ds, SOP_INSTANCE_UID), "below the level");
}

#[test]
fn image_level() {
    use tags::*;
    let identifier = qr("IMAGE")
        .str(STUDY_INSTANCE_UID, VR::UI, "1.2.9.1")
        .str(SERIES_INSTANCE_UID, VR::UI, "1.2.9.1.1")
        .str(SOP_INSTANCE_UID, VR::UI, "")
        .str(SOP_CLASS_UID, VR::UI, "")
        .str(INSTANCE_NUMBER, VR::IS, "")
        .bytes(ROWS, VR::US, Vec::new())
        .bytes(COLUMNS, VR::US, Vec::new())
        .str(NUMBER_OF_FRAMES, VR::IS, "")
        .str(NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, "");
    let req = find(STUDY_ROOT_FIND, identifier).expect("request");
    let row = instance_row();
    let ds = respond(&req, FindRow::Image(&row), Some("VNA"));
    assert_eq!(text(&ds, QUERY_RETRIEVE_LEVEL), "IMAGE");
    assert_eq!(text(&ds, SOP_INSTANCE_UID), "1.2.9.1.1.1");
    assert_eq!(text(&ds, SOP_CLASS_UID), vna_catalog::conformance::CT_IMAGE);
    assert_eq!(ds.int(INSTANCE_NUMBER, false), Some(1));
    assert_eq!((ds.int(ROWS, false), ds.int(COLUMNS, false)), (Some(512), Some(512)));
    assert_eq!(ds.get(ROWS).map(|e| e.vr), Some(VR::US));
    assert!(zero_length(&ds, NUMBER_OF_FRAMES), "single-frame: no value");
    assert!(zero_length(&ds, NUMBER_OF_SERIES_RELATED_INSTANCES));
}

#[test]
fn only_little_endian_syntaxes_encode_responses() {
    assert_eq!(ResponseEncoding::for_transfer_syntax(ts::EXPLICIT_VR_BIG_ENDIAN), None);
    assert_eq!(ResponseEncoding::for_transfer_syntax(ts::JPEG_BASELINE), None);
    assert_eq!(ResponseEncoding::for_transfer_syntax("1.2.840.10008.1.2\0"), Some(ResponseEncoding::ImplicitLittleEndian));
}
