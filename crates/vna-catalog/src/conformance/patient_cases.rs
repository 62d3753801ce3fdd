//! Conformance cases for the patient level (C-FIND Patient Root, PS3.4 §C.6.1.1.2): matching,
//! counters over current instances only, ordering and paging.

use super::query_cases::world;
use super::*;
use Key::*;

pub async fn patient_level_matching(c: &dyn Catalog) {
    world(c).await;
    assert_eq!(patient_ids(c, vec![]).await, vec!["PID-A", "PID-B", "pid-c"], "byte order of Patient ID");
    assert_eq!(patient_ids(c, vec![filter(PatientId, single("PID-B"))]).await, vec!["PID-B"]);
    assert!(patient_ids(c, vec![filter(PatientId, single("pid-b"))]).await.is_empty(), "case-sensitive");
    assert_eq!(patient_ids(c, vec![filter(PatientName, wild("*oe^*"))]).await, vec!["PID-B", "pid-c"]);
    assert_eq!(patient_ids(c, vec![filter(PatientName, wild("Doe*"))]).await, vec!["PID-B"]);
    assert_eq!(patient_ids(c, vec![filter(PatientName, fuzzy("DOE"))]).await, vec!["PID-B", "pid-c"]);
    assert_eq!(patient_ids(c, vec![filter(PatientName, fuzzy("müll jur"))]).await, vec!["PID-A"]);
    assert_eq!(patient_ids(c, vec![filter(PatientBirthDate, range(Some("19800101"), None))]).await, vec!["PID-B", "pid-c"]);
    assert_eq!(patient_ids(c, vec![filter(PatientSex, single("F"))]).await, vec!["pid-c"]);
    assert_eq!(patient_ids(c, vec![filter(IssuerOfPatientId, single("SYNTH"))]).await.len(), 3);
    assert_eq!(patient_ids(c, vec![filter(PatientId, list(&["PID-A", "pid-c", "nobody"]))]).await, vec!["PID-A", "pid-c"]);
    // Lower-level keys select patients having a matching current instance.
    assert_eq!(patient_ids(c, vec![filter(Modality, single("MR"))]).await, vec!["PID-B"]);
    assert_eq!(patient_ids(c, vec![filter(StudyDate, range(None, Some("20211231")))]).await, vec!["PID-A", "PID-B"]);
    assert_eq!(patient_ids(c, vec![filter(ModalitiesInStudy, single("SR"))]).await, vec!["PID-A"]);
    assert_eq!(patient_ids(c, vec![filter(ReferringPhysicianName, fuzzy("smith"))]).await, vec!["PID-A"]);
    assert_eq!(patient_ids(c, vec![filter(SopInstanceUid, single("1.2.4.3.1.2"))]).await, vec!["pid-c"]);
    let same_series = vec![filter(SeriesDescription, single("Lung")), filter(Modality, single("MR"))];
    assert!(patient_ids(c, same_series).await.is_empty());
    let both = vec![filter(PatientSex, single("M")), filter(Modality, single("CT"))];
    assert_eq!(patient_ids(c, both).await, vec!["PID-A"]);
    // The row carries the patient's attributes and its counters.
    let rows = c.query_patients(&query(Level::Patient, vec![filter(PatientId, single("PID-A"))]), &Visibility::ALL).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].patient.patient_name, "Müller^Jürgen");
    assert_eq!(rows[0].patient.patient_birth_date, "19600315");
    assert_eq!((rows[0].number_of_studies, rows[0].number_of_series, rows[0].number_of_instances), (1, 2, 3));
    // A lower-level filter selects the patient but does not narrow its counters.
    let rows = c.query_patients(&query(Level::Patient, vec![filter(Modality, single("SR"))]), &Visibility::ALL).await.unwrap();
    assert_eq!((rows[0].number_of_studies, rows[0].number_of_series, rows[0].number_of_instances), (1, 2, 3));
}

pub async fn patient_counters_count_current_instances(c: &dyn Catalog) {
    // One patient, two studies; the second study holds one instance with a prior version kept
    // beside it (not current) and one replaced (its old version no longer current).
    let s1 = new_instance("1.2.7.1", "1.2.7.1.1", "1.2.7.1.1.1");
    let mut s2 = new_instance("1.2.7.2", "1.2.7.2.1", "1.2.7.2.1.1");
    s2.series.modality = "MR".into();
    let mut s2b = new_instance("1.2.7.2", "1.2.7.2.2", "1.2.7.2.2.1");
    s2b.series.series_number = Some(2);
    for n in [&s1, &s2, &s2b] {
        store(c, n).await;
    }
    let kept = c.register(&new_bytes(s2.clone(), "kept"), VersionPolicy::KeepBoth).await.unwrap();
    assert!(matches!(kept, RegisterOutcome::StoredAsPriorVersion { .. }), "{kept:?}");
    let replaced = c.register(&new_bytes(s2b.clone(), "replaced"), VersionPolicy::Replace).await.unwrap();
    assert!(matches!(replaced, RegisterOutcome::Stored { replaced_previous: true, .. }), "{replaced:?}");
    // Another patient, to check counters are per patient.
    let mut other = new_instance("1.2.7.3", "1.2.7.3.1", "1.2.7.3.1.1");
    other.patient.patient_id = "PAT-0002".into();
    store(c, &other).await;

    let rows = c.query_patients(&query(Level::Patient, vec![]), &Visibility::ALL).await.unwrap();
    let counts: Vec<_> =
        rows.iter().map(|r| (r.patient.patient_id.as_str(), r.number_of_studies, r.number_of_series, r.number_of_instances)).collect();
    assert_eq!(counts, vec![("PAT-0001", 2, 3, 3), ("PAT-0002", 1, 1, 1)]);
    // Matching only sees current versions, like at the other levels.
    assert_eq!(patient_ids(c, vec![filter(Modality, single("MR"))]).await, vec!["PAT-0001"]);
    assert!(patient_ids(c, vec![filter(Modality, single("US"))]).await.is_empty());
    assert_counts_true(c).await;
}

pub async fn patient_level_paging_and_order(c: &dyn Catalog) {
    // Patients without an ID stay apart (one row per study), after those with one.
    for (k, pid) in ["B", "", "A", "", "A"].iter().enumerate() {
        let study = format!("1.2.8.{k}");
        let mut n = new_instance(&study, &format!("{study}.1"), &format!("{study}.1.1"));
        n.patient.patient_id = (*pid).into();
        n.patient.issuer_of_patient_id = if k == 4 { "OTHER".into() } else { "SYNTH".into() };
        store(c, &n).await;
    }
    let all = c.query_patients(&query(Level::Patient, vec![]), &Visibility::ALL).await.unwrap();
    let ids: Vec<_> = all.iter().map(|r| (r.patient.patient_id.as_str(), r.patient.issuer_of_patient_id.as_str())).collect();
    assert_eq!(ids, vec![("", "SYNTH"), ("", "SYNTH"), ("A", "OTHER"), ("A", "SYNTH"), ("B", "SYNTH")]);
    assert!(all.iter().all(|r| r.number_of_studies == 1));
    let page = |limit, offset| async move {
        let q = Query { level: Level::Patient, filters: vec![], limit, offset };
        c.query_patients(&q, &Visibility::ALL).await.unwrap().into_iter().map(|r| r.patient.patient_id).collect::<Vec<_>>()
    };
    assert_eq!(page(Some(2), 2).await, vec!["A", "A"]);
    assert_eq!(page(None, 4).await, vec!["B"]);
    assert!(page(Some(0), 0).await.is_empty());
}
