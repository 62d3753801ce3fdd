//! Fixtures for the C-FIND unit tests: identifiers written with `vna_dicom::write`, parsed
//! with the bare data set parser, and catalog rows built from the catalog's synthetic
//! conformance instances (no PHI).

use super::*;
use vna_archive::model::{InstanceRow, NewInstance, PatientRow, SeriesRow, StudyRow};
use vna_dicom::dataset::DataSet;
use vna_dicom::parse::{parse_dataset_bytes, ParseLimits};
use vna_dicom::write::{data_set, Items};
use vna_dicom::{tags, ts};

pub fn qr(level: &str) -> Items {
    Items::new().str(tags::QUERY_RETRIEVE_LEVEL, VR::CS, level)
}

pub fn find(model: &str, identifier: Items) -> Result<FindRequest, FindError> {
    find_with(model, identifier, FindOptions::default())
}

pub fn find_with(model: &str, identifier: Items, options: FindOptions) -> Result<FindRequest, FindError> {
    let explicit = parse_request(&data_set(&identifier, ts::EXPLICIT_VR_LITTLE_ENDIAN), ts::EXPLICIT_VR_LITTLE_ENDIAN, model, options);
    let implicit = parse_request(&data_set(&identifier, ts::IMPLICIT_VR_LITTLE_ENDIAN), ts::IMPLICIT_VR_LITTLE_ENDIAN, model, options);
    assert_eq!(explicit, implicit, "explicit and implicit VR give the same request");
    explicit
}

/// Parses a response identifier back (the round trip a C-FIND SCU does).
pub fn parse_response(bytes: &[u8], transfer_syntax: &str) -> DataSet {
    parse_dataset_bytes(bytes, transfer_syntax, ParseLimits::default()).expect("response parses").dataset
}

fn instance() -> NewInstance {
    let mut n = vna_catalog::conformance::new_instance("1.2.9.1", "1.2.9.1.1", "1.2.9.1.1.1");
    n.patient.patient_name = "Müller^Jürgen".into();
    n
}

pub fn patient_row() -> PatientRow {
    PatientRow { patient: instance().patient, number_of_studies: 2, number_of_series: 3, number_of_instances: 7 }
}

pub fn study_row() -> StudyRow {
    let n = instance();
    StudyRow {
        patient: n.patient,
        study: n.study,
        modalities_in_study: vec!["CT".into(), "SR".into()],
        sop_classes_in_study: vec![vna_catalog::conformance::CT_IMAGE.into()],
        number_of_series: 2,
        number_of_instances: 5,
    }
}

pub fn series_row() -> SeriesRow {
    let n = instance();
    SeriesRow { patient: n.patient, study: n.study, series: n.series, number_of_instances: 4 }
}

pub fn instance_row() -> InstanceRow {
    vna_catalog::conformance::instance_row(instance())
}
