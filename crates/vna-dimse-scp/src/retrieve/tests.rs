//! Unit tests of the retrieve identifier and the final response.
#![allow(clippy::unwrap_used)]

use super::*;
use vna_archive::query::{Filter, Key, Matcher};

fn identifier(level: &str, keys: &[(Tag, VR, &str)]) -> Vec<u8> {
    let mut items = Items::new().str(tags::QUERY_RETRIEVE_LEVEL, VR::CS, level);
    for (tag, vr, value) in keys {
        items = items.str(*tag, *vr, value);
    }
    data_set(&items, ts::EXPLICIT_VR_LITTLE_ENDIAN)
}

#[test]
fn unique_keys_of_the_level_and_above_become_instance_filters() {
    let id = identifier(
        "SERIES",
        &[
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3"),
            (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4\\1.2.3.5"),
            (tags::MODALITY, VR::CS, "CT"),
        ],
    );
    let q = retrieve_query(&id, ts::EXPLICIT_VR_LITTLE_ENDIAN, STUDY_ROOT_MOVE, 1000).unwrap();
    assert_eq!(q.level, Level::Instance);
    assert!(q.filters.contains(&Filter { key: Key::StudyUid, matcher: Matcher::Single("1.2.3".into()) }), "{:?}", q.filters);
    assert!(
        q.filters.iter().any(|f| f.key == Key::SeriesUid && matches!(f.matcher, Matcher::List(ref l) if l.len() == 2)),
        "{:?}",
        q.filters
    );
    // Not a unique key: ignored, never a filter.
    assert!(!q.filters.iter().any(|f| f.key == Key::Modality));
}

#[test]
fn refusals() {
    let no_uid = identifier("STUDY", &[(tags::STUDY_INSTANCE_UID, VR::UI, "")]);
    let e = retrieve_query(&no_uid, ts::EXPLICIT_VR_LITTLE_ENDIAN, STUDY_ROOT_GET, 1000).unwrap_err();
    assert_eq!(e, FindError::MissingUniqueKey { tag: tags::STUDY_INSTANCE_UID });
    assert_eq!(e.status(), 0xA900);
    let patient_in_study_root = identifier("PATIENT", &[(tags::PATIENT_ID, VR::LO, "P1")]);
    assert_eq!(retrieve_query(&patient_in_study_root, ts::EXPLICIT_VR_LITTLE_ENDIAN, STUDY_ROOT_MOVE, 1000).unwrap_err().status(), 0xA900);
    let ok = identifier("PATIENT", &[(tags::PATIENT_ID, VR::LO, "P1")]);
    assert!(retrieve_query(&ok, ts::EXPLICIT_VR_LITTLE_ENDIAN, PATIENT_ROOT_MOVE, 1000).is_ok());
    assert_eq!(
        retrieve_query(&ok, ts::EXPLICIT_VR_LITTLE_ENDIAN, "1.2.840.10008.5.1.4.1.2.1.1", 1000).unwrap_err(),
        FindError::UnsupportedModel
    );
    // Patient Root, hierarchical: the study level needs the patient's ID too.
    let no_patient = identifier("STUDY", &[(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3")]);
    assert_eq!(retrieve_query(&no_patient, ts::EXPLICIT_VR_LITTLE_ENDIAN, PATIENT_ROOT_GET, 1000).unwrap_err().status(), 0xA900);
}

#[test]
fn final_statuses_and_counts() {
    let mut t = Tally::new(3);
    t.answered("1.1", Status::SUCCESS);
    assert_eq!(t.counts(), SubOperations { remaining: Some(2), completed: 1, failed: 0, warning: 0 });
    t.answered("1.2", Status(0xB007));
    t.answered("1.3", Status(0xA700));
    let r = t.final_reply(false, ts::IMPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(r.status, Status(0xB000));
    assert_eq!(r.suboperations, Some(SubOperations { remaining: None, completed: 1, failed: 1, warning: 1 }));
    let list = parse_dataset_bytes(&r.data_set.unwrap(), ts::IMPLICIT_VR_LITTLE_ENDIAN, IDENTIFIER_LIMITS).unwrap();
    assert_eq!(list.dataset.text(tags::FAILED_SOP_INSTANCE_UID_LIST, &Charset::default()).unwrap().trim_end_matches('\0'), "1.3");

    let mut all_ok = Tally::new(1);
    all_ok.answered("1.1", Status::SUCCESS);
    let r = all_ok.final_reply(false, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!((r.status, r.data_set), (Status::SUCCESS, None));

    // Nothing reached the peer: out of resources, every UID listed.
    let mut none = Tally::new(2);
    none.failed("1.1");
    none.failed("1.2");
    let r = none.final_reply(false, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(r.status, Status::OUT_OF_RESOURCES_SUBOPERATIONS);
    let list = parse_dataset_bytes(&r.data_set.unwrap(), ts::EXPLICIT_VR_LITTLE_ENDIAN, IDENTIFIER_LIMITS).unwrap();
    assert_eq!(list.dataset.text(tags::FAILED_SOP_INSTANCE_UID_LIST, &Charset::default()).unwrap().trim_end_matches('\0'), "1.1\\1.2");

    // Cancelled after one: the remaining count stays in the response.
    let mut c = Tally::new(3);
    c.answered("1.1", Status::SUCCESS);
    let r = c.final_reply(true, ts::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(r.status, Status::CANCEL);
    assert_eq!(r.suboperations, Some(SubOperations { remaining: Some(2), completed: 1, failed: 0, warning: 0 }));
}
