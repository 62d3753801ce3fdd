//! Conformance cases for registering, versions, frames, metadata, the change feed and
//! concurrent writers.

use std::collections::BTreeSet;
use std::sync::Arc;

use vna_dicom::uid::{SopInstanceUid, StudyUid};

use super::*;
use crate::{ByteRange, CatalogError, ChangeKind, Scope};

pub async fn register_stores_first_version(c: &dyn Catalog) {
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    let RegisterOutcome::Stored { instance, change_seq, replaced_previous } = c.register(&n, VersionPolicy::Reject).await.unwrap() else {
        panic!("expected Stored")
    };
    assert!(!replaced_previous);
    assert!(change_seq > 0);
    assert_eq!((instance.version, instance.is_current), (1, true));
    assert_eq!((&instance.patient, &instance.study, &instance.series), (&n.patient, &n.study, &n.series));
    assert_eq!((&instance.instance, &instance.blob), (&n.instance, &n.blob));
    let current = c.current_instance(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().expect("current version");
    assert_eq!(current, instance, "read back equals what register returned");
    assert_eq!(c.count_instances().await.unwrap(), 1);
    let unknown = SopInstanceUid::new("1.2.3.999").unwrap();
    assert!(c.current_instance(&unknown, &Visibility::ALL).await.unwrap().is_none());
    assert!(c.instance_versions(&unknown, &Visibility::ALL).await.unwrap().is_empty());
}

/// `register_after`: the row commits only once the object's flush has ended well; until then
/// no read sees it, and a failed flush records nothing (alone or beside another registration,
/// which commits).
pub async fn a_row_waits_for_its_object_s_flush(c: &dyn Catalog) {
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    let (flushed, flush) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let durable = crate::Durable::after(async move { flush.await.unwrap_or(Err("the test dropped the flush".into())) });
    let (outcome, ()) = tokio::join!(c.register_after(&n, VersionPolicy::Reject, durable), async {
        // Time for the writer to run the statements and reach the commit.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(c.current_instance(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().is_none(), "visible before its flush");
        assert!(c.changes_since(0, 10).await.unwrap().is_empty(), "a change before the flush");
        flushed.send(Ok(())).unwrap();
    });
    assert!(matches!(outcome.unwrap(), RegisterOutcome::Stored { .. }));
    assert!(c.current_instance(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().is_some());

    let failing = || crate::Durable::after(async { Err("the flush failed (test)".to_owned()) });
    let lost = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.2");
    assert!(matches!(c.register_after(&lost, VersionPolicy::Reject, failing()).await, Err(CatalogError::Unflushed(_))));
    // Beside a registration whose object is durable: that one commits, alone if need be.
    let kept = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.3");
    let (a, b) = tokio::join!(
        c.register_after(&lost, VersionPolicy::Reject, failing()),
        c.register_after(&kept, VersionPolicy::Reject, crate::Durable::ready())
    );
    assert!(matches!(a, Err(CatalogError::Unflushed(_))));
    assert!(matches!(b.unwrap(), RegisterOutcome::Stored { .. }));
    assert!(c.current_instance(&lost.instance.sop_uid, &Visibility::ALL).await.unwrap().is_none());
    assert_eq!(c.count_instances().await.unwrap(), 2);
    assert_eq!(c.changes_since(0, 10).await.unwrap().len(), 2);
    assert_counts_true(c).await;
}

pub async fn duplicate_writes_nothing(c: &dyn Catalog) {
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    store(c, &n).await;
    let first = c.current_instance(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().unwrap();
    // Even with changed attributes, same bytes means duplicate and nothing is written.
    let mut again = n.clone();
    again.patient.patient_name = "Changed^Name".into();
    for policy in [VersionPolicy::Reject, VersionPolicy::KeepBoth, VersionPolicy::Replace] {
        match c.register(&again, policy).await.unwrap() {
            RegisterOutcome::Duplicate { existing } => assert_eq!(existing, first),
            other => panic!("expected Duplicate, got {other:?}"),
        }
    }
    assert_eq!(c.instance_versions(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().len(), 1);
    assert_eq!(c.changes_since(0, 100).await.unwrap().len(), 1);
    assert_eq!(study_uids(c, vec![filter(Key::PatientName, single("Changed^Name"))]).await.len(), 0);
}

pub async fn reject_reports_conflict(c: &dyn Catalog) {
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    store(c, &n).await;
    let first = c.current_instance(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().unwrap();
    match c.register(&new_bytes(n.clone(), "v2"), VersionPolicy::Reject).await.unwrap() {
        RegisterOutcome::Conflict { existing } => assert_eq!(existing, first),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(c.instance_versions(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().len(), 1);
    assert_eq!(c.changes_since(0, 100).await.unwrap().len(), 1);
}

pub async fn keep_both_records_prior_version(c: &dyn Catalog) {
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    store(c, &n).await;
    let v2 = new_bytes(n.clone(), "v2");
    let RegisterOutcome::StoredAsPriorVersion { instance, change_seq } = c.register(&v2, VersionPolicy::KeepBoth).await.unwrap() else {
        panic!("expected StoredAsPriorVersion")
    };
    assert_eq!((instance.version, instance.is_current), (2, false));
    let current = c.current_instance(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().unwrap();
    assert_eq!((current.version, current.blob.sha256.as_str()), (1, n.blob.sha256.as_str()));
    let versions = c.instance_versions(&n.instance.sop_uid, &Visibility::ALL).await.unwrap();
    assert_eq!(versions.iter().map(|v| (v.version, v.is_current)).collect::<Vec<_>>(), vec![(1, true), (2, false)]);
    let changes = c.changes_since(0, 100).await.unwrap();
    assert_eq!(changes.last().map(|ch| (ch.seq, &ch.kind)), Some((change_seq, &ChangeKind::PriorVersionRecorded)));
    assert_eq!(c.count_instances().await.unwrap(), 1);
    assert_eq!(sop_uids(c, vec![]).await.len(), 1);
    // A version equal to a non-current one is not a duplicate of the current one: new version.
    let v3 = new_bytes(n.clone(), "v3");
    assert!(matches!(c.register(&v3, VersionPolicy::KeepBoth).await.unwrap(), RegisterOutcome::StoredAsPriorVersion { .. }));
    assert_eq!(c.instance_versions(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().len(), 3);
    assert_counts_true(c).await;
}

pub async fn replace_makes_new_current(c: &dyn Catalog) {
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    store(c, &n).await;
    store(c, &new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.2")).await;
    let kept = new_bytes(n.clone(), "kept");
    c.register(&kept, VersionPolicy::KeepBoth).await.unwrap();
    let v3 = new_bytes(n.clone(), "v3");
    let RegisterOutcome::Stored { instance, change_seq, replaced_previous } = c.register(&v3, VersionPolicy::Replace).await.unwrap() else {
        panic!("expected Stored")
    };
    assert!(replaced_previous);
    assert_eq!((instance.version, instance.is_current), (3, true));
    let versions = c.instance_versions(&n.instance.sop_uid, &Visibility::ALL).await.unwrap();
    assert_eq!(versions.iter().map(|v| (v.version, v.is_current)).collect::<Vec<_>>(), vec![(1, false), (2, false), (3, true)]);
    assert_eq!(c.current_instance(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().unwrap().blob.sha256, v3.blob.sha256);
    let last = c.changes_since(change_seq - 1, 10).await.unwrap();
    assert_eq!(last.first().map(|ch| &ch.kind), Some(&ChangeKind::InstanceReplaced));
    assert_eq!(c.count_instances().await.unwrap(), 2);
    let studies = c.query_studies(&query(Level::Study, vec![]), &Visibility::ALL).await.unwrap();
    assert_eq!((studies.len(), studies[0].number_of_instances, studies[0].number_of_series), (1, 2, 1));
    let series = c.query_series(&query(Level::Series, vec![]), &Visibility::ALL).await.unwrap();
    assert_eq!(series[0].number_of_instances, 2);
    let instances = c.query_instances(&query(Level::Instance, vec![]), &Visibility::ALL).await.unwrap();
    assert_eq!(instances.len(), 2);
    assert!(instances.iter().all(|i| i.is_current));
    // Replacing back with the bytes of an old, non-current version is a new version too.
    assert!(matches!(c.register(&n, VersionPolicy::Replace).await.unwrap(), RegisterOutcome::Stored { .. }));
    assert_eq!(c.current_instance(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().unwrap().version, 4);
    assert_counts_true(c).await;
}

/// Two series of one patient stored in turn (as two associations do), the patient's name
/// corrected in the second and the first series sent again with the old name: the catalog
/// ends with the latest values (the writer's remembered rows never outlive a later change).
pub async fn interleaved_series_keep_the_latest_values(c: &dyn Catalog) {
    let mut a1 = new_instance("1.2.7.1", "1.2.7.1.1", "1.2.7.1.1.1");
    let mut b1 = new_instance("1.2.7.2", "1.2.7.2.1", "1.2.7.2.1.1");
    let mut a2 = new_instance("1.2.7.1", "1.2.7.1.1", "1.2.7.1.1.2");
    let mut b2 = new_instance("1.2.7.2", "1.2.7.2.1", "1.2.7.2.1.2");
    a1.patient.patient_name = "Old^Name".into();
    b1.patient.patient_name = "New^Name".into();
    a2.patient.patient_name = "Old^Name".into();
    b2.patient.patient_name = "New^Name".into();
    b2.study.study_description = "CORRECTED".into();
    let mut a3 = new_instance("1.2.7.1", "1.2.7.1.1", "1.2.7.1.1.3");
    a3.patient.patient_name = "Old^Name".into();
    for n in [&a1, &b1, &a2, &b2, &a3] {
        store(c, n).await;
    }
    let patients = c.query_patients(&query(Level::Patient, vec![]), &Visibility::ALL).await.unwrap();
    assert_eq!(patients.iter().map(|p| p.patient.patient_name.as_str()).collect::<Vec<_>>(), vec!["Old^Name"]);
    let mut studies = c.query_studies(&query(Level::Study, vec![]), &Visibility::ALL).await.unwrap();
    studies.sort_by(|a, b| a.study.study_uid.as_str().cmp(b.study.study_uid.as_str()));
    let got: Vec<_> = studies.iter().map(|s| (s.study.study_description.as_str(), s.number_of_instances)).collect();
    assert_eq!(got, vec![("Synthetic study", 3), ("CORRECTED", 2)]);
    assert_counts_true(c).await;
}

/// Two series of one study arriving interleaved share their patient and study rows: a change
/// to the study made through one series is not undone by the other's next instance reusing
/// what it saw before, and the latest values win.
pub async fn series_of_one_study_interleaved_keep_the_latest_values(c: &dyn Catalog) {
    let axial = |sop: &str| new_instance("1.2.8.1", "1.2.8.1.1", sop);
    let coronal = |sop: &str| new_instance("1.2.8.1", "1.2.8.1.2", sop);
    for n in [axial("1.2.8.1.1.1"), coronal("1.2.8.1.2.1"), axial("1.2.8.1.1.2"), coronal("1.2.8.1.2.2")] {
        store(c, &n).await;
    }
    let mut corrected = coronal("1.2.8.1.2.3");
    corrected.study.study_description = "CORRECTED".into();
    corrected.patient.patient_name = "Doe^Janet".into();
    store(c, &corrected).await;
    let studies = c.query_studies(&query(Level::Study, vec![]), &Visibility::ALL).await.unwrap();
    assert_eq!((studies[0].study.study_description.as_str(), studies[0].patient.patient_name.as_str()), ("CORRECTED", "Doe^Janet"));
    // The axial series' next instance still carries the old values: they win again, being
    // the latest.
    store(c, &axial("1.2.8.1.1.3")).await;
    let studies = c.query_studies(&query(Level::Study, vec![]), &Visibility::ALL).await.unwrap();
    assert_eq!(studies.len(), 1);
    assert_eq!((studies[0].study.study_description.as_str(), studies[0].number_of_instances), ("Synthetic study", 6));
    assert_eq!(studies[0].patient.patient_name, "Doe^Jane");
    assert_counts_true(c).await;
}

pub async fn latest_attributes_win(c: &dyn Catalog) {
    let a = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    store(c, &a).await;
    let mut b = new_instance("1.2.3.2", "1.2.3.2.1", "1.2.3.2.1.1");
    b.patient.patient_name = "Doe^Janet".into();
    b.series.series_description = "Updated".into();
    store(c, &b).await;
    let mut a2 = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.2");
    a2.patient.patient_name = "Doe^Janet".into();
    a2.study.study_description = "Corrected".into();
    a2.series.series_description = "Corrected series".into();
    store(c, &a2).await;
    let studies = c.query_studies(&query(Level::Study, vec![]), &Visibility::ALL).await.unwrap();
    assert_eq!(studies.len(), 2);
    assert!(studies.iter().all(|s| s.patient.patient_name == "Doe^Janet"), "one patient, latest name");
    assert_eq!(study_uids(c, vec![filter(Key::StudyDescription, single("Corrected"))]).await, vec!["1.2.3.1"]);
    assert_eq!(series_uids(c, vec![filter(Key::SeriesDescription, single("Corrected series"))]).await, vec!["1.2.3.1.1"]);
    // Fuzzy tokens follow the latest name.
    assert_eq!(study_uids(c, vec![filter(Key::PatientName, fuzzy("janet"))]).await.len(), 2);
    let mut renamed = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.3");
    renamed.patient.patient_name = "Roe^Alex".into();
    store(c, &renamed).await;
    assert!(study_uids(c, vec![filter(Key::PatientName, fuzzy("janet"))]).await.is_empty());
    assert_eq!(study_uids(c, vec![filter(Key::PatientName, fuzzy("alex"))]).await.len(), 2);
    let one = c.current_instance(&a.instance.sop_uid, &Visibility::ALL).await.unwrap().unwrap();
    assert_eq!(one.patient.patient_name, "Roe^Alex");
    assert_counts_true(c).await;
}

pub async fn patients_without_id_stay_apart(c: &dyn Catalog) {
    let mut a = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    a.patient.patient_id = String::new();
    a.patient.patient_name = "Alpha^Anon".into();
    let mut b = new_instance("1.2.3.2", "1.2.3.2.1", "1.2.3.2.1.1");
    b.patient.patient_id = String::new();
    b.patient.patient_name = "Beta^Anon".into();
    store(c, &a).await;
    store(c, &b).await;
    assert_eq!(study_uids(c, vec![filter(Key::PatientName, single("Alpha^Anon"))]).await, vec!["1.2.3.1"]);
    assert_eq!(study_uids(c, vec![filter(Key::PatientName, single("Beta^Anon"))]).await, vec!["1.2.3.2"]);
}

pub async fn study_and_series_counts(c: &dyn Catalog) {
    let ct = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    let mut ct2 = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.2");
    ct2.instance.instance_number = Some(2);
    let mut sr = new_instance("1.2.3.1", "1.2.3.1.2", "1.2.3.1.2.1");
    sr.series.modality = "SR".into();
    sr.series.series_number = Some(2);
    sr.instance.sop_class_uid = vna_dicom::uid::SopClassUid::new(BASIC_TEXT_SR).unwrap();
    let mut mr = new_instance("1.2.3.1", "1.2.3.1.3", "1.2.3.1.3.1");
    mr.series.modality = "MR".into();
    mr.series.series_number = Some(3);
    mr.instance.sop_class_uid = vna_dicom::uid::SopClassUid::new(MR_IMAGE).unwrap();
    for n in [&ct, &ct2, &sr, &mr] {
        store(c, n).await;
    }
    c.register(&new_bytes(ct.clone(), "prior"), VersionPolicy::KeepBoth).await.unwrap();
    let studies = c.query_studies(&query(Level::Study, vec![]), &Visibility::ALL).await.unwrap();
    assert_eq!(studies.len(), 1);
    let s = &studies[0];
    assert_eq!(s.modalities_in_study, vec!["CT", "MR", "SR"]);
    assert_eq!(s.sop_classes_in_study, vec![CT_IMAGE, MR_IMAGE, BASIC_TEXT_SR]);
    assert_eq!((s.number_of_series, s.number_of_instances), (3, 4));
    let series = c.query_series(&query(Level::Series, vec![]), &Visibility::ALL).await.unwrap();
    let counts: Vec<(String, i64)> = series.iter().map(|r| (r.series.modality.clone(), r.number_of_instances)).collect();
    assert_eq!(counts, vec![("CT".to_owned(), 2), ("SR".to_owned(), 1), ("MR".to_owned(), 1)]);
    assert_eq!(c.count_instances().await.unwrap(), 4);
    // A clinical reader's counters come from the maintained counts: the same numbers.
    let clinical = Visibility::default();
    let s = &c.query_studies(&query(Level::Study, vec![]), &clinical).await.unwrap()[0];
    assert_eq!((s.modalities_in_study.len(), s.sop_classes_in_study.len(), s.number_of_series, s.number_of_instances), (3, 3, 3, 4));
    assert_counts_true(c).await;

    // The MR series moves to another study with its next instance: each study counts what it
    // holds now.
    let mut moved = new_instance("1.2.3.9", "1.2.3.1.3", "1.2.3.1.3.2");
    moved.series.modality = "MR".into();
    moved.instance.sop_class_uid = vna_dicom::uid::SopClassUid::new(MR_IMAGE).unwrap();
    store(c, &moved).await;
    let mut studies = c.query_studies(&query(Level::Study, vec![]), &clinical).await.unwrap();
    studies.sort_by(|a, b| a.study.study_uid.as_str().cmp(b.study.study_uid.as_str()));
    let got: Vec<_> = studies
        .iter()
        .map(|s| (s.study.study_uid.as_str(), s.modalities_in_study.clone(), s.number_of_series, s.number_of_instances))
        .collect();
    assert_eq!(got, vec![("1.2.3.1", vec!["CT".to_owned(), "SR".to_owned()], 2, 3), ("1.2.3.9", vec!["MR".to_owned()], 1, 2)]);
    let series = c.query_series(&query(Level::Series, vec![]), &clinical).await.unwrap();
    assert_eq!(series.iter().map(|r| r.number_of_instances).sum::<i64>(), 5);
    let patients = c.query_patients(&query(Level::Patient, vec![]), &clinical).await.unwrap();
    assert_eq!(
        patients.iter().map(|r| (r.number_of_studies, r.number_of_series, r.number_of_instances)).collect::<Vec<_>>(),
        vec![(2, 3, 5)]
    );
    assert_counts_true(c).await;
}

pub async fn frames_native(c: &dyn Catalog) {
    let mut n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    n.frames = FrameIndex::Native { first_offset: 1000, frame_length: 512, count: 3 };
    let pk = store(c, &n).await;
    let got = c.frames(pk, &[3, 1, 3]).await.unwrap().unwrap();
    let r = |offset| vec![ByteRange { offset, length: 512 }];
    assert_eq!(got, vec![r(2024), r(1000), r(2024)]);
    assert_eq!(c.frames(pk, &[]).await.unwrap(), Some(vec![]));
    for bad in [0, 4] {
        match c.frames(pk, &[1, bad]).await {
            Err(CatalogError::FrameOutOfRange { number, count }) => assert_eq!((number, count), (bad, 3)),
            other => panic!("expected FrameOutOfRange, got {other:?}"),
        }
    }
}

pub async fn frames_encapsulated(c: &dyn Catalog) {
    let mut n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    let br = |offset, length| ByteRange { offset, length };
    // Enough frames to need several insert statements.
    let mut frames: Vec<Vec<ByteRange>> = vec![vec![br(100, 10)], vec![br(120, 5), br(133, 7), br(148, 1)]];
    frames.extend((0..1200u64).map(|k| vec![br(10_000 + k * 16, 8)]));
    n.frames = FrameIndex::Encapsulated { frames: frames.clone() };
    let pk = store(c, &n).await;
    let got = c.frames(pk, &[2, 1, 2, 1202]).await.unwrap().unwrap();
    assert_eq!(got, vec![frames[1].clone(), frames[0].clone(), frames[1].clone(), frames[1201].clone()]);
    match c.frames(pk, &[1203]).await {
        Err(CatalogError::FrameOutOfRange { number, count }) => assert_eq!((number, count), (1203, 1202)),
        other => panic!("expected FrameOutOfRange, got {other:?}"),
    }
    // Each version keeps its own frame index.
    let mut v2 = new_bytes(n.clone(), "v2");
    v2.frames = FrameIndex::Encapsulated { frames: vec![vec![br(7, 3)]] };
    let RegisterOutcome::Stored { instance, .. } = c.register(&v2, VersionPolicy::Replace).await.unwrap() else {
        panic!("expected Stored")
    };
    assert_eq!(c.frames(instance.pk, &[1]).await.unwrap(), Some(vec![vec![br(7, 3)]]));
    assert_eq!(c.frames(pk, &[2]).await.unwrap(), Some(vec![frames[1].clone()]));
}

pub async fn frames_none_and_unknown(c: &dyn Catalog) {
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    let pk = store(c, &n).await;
    assert_eq!(c.frames(pk, &[]).await.unwrap(), Some(vec![]));
    assert!(matches!(c.frames(pk, &[1]).await, Err(CatalogError::FrameOutOfRange { number: 1, count: 0 })));
    assert_eq!(c.frames(pk + 1000, &[1]).await.unwrap(), None);
}

pub async fn metadata_in_request_order(c: &dyn Catalog) {
    let mut pks = Vec::new();
    for k in 1..=3 {
        let n = new_instance("1.2.3.1", "1.2.3.1.1", &format!("1.2.3.1.1.{k}"));
        pks.push((store(c, &n).await, n.metadata));
    }
    let got = c.metadata(&[pks[2].0, 999_999, pks[0].0, pks[2].0]).await.unwrap();
    assert_eq!(got, vec![pks[2].clone(), pks[0].clone(), pks[2].clone()]);
    assert!(c.metadata(&[]).await.unwrap().is_empty());
}

pub async fn change_feed_order(c: &dyn Catalog) {
    assert_eq!(c.last_change_seq().await.unwrap(), 0, "an empty feed's head");
    let mut seqs = Vec::new();
    for k in 1..=5 {
        let n = new_instance("1.2.3.1", "1.2.3.1.1", &format!("1.2.3.1.1.{k}"));
        let RegisterOutcome::Stored { change_seq, .. } = c.register(&n, VersionPolicy::Reject).await.unwrap() else {
            panic!("expected Stored")
        };
        seqs.push(change_seq);
    }
    let all = c.changes_since(0, 100).await.unwrap();
    assert_eq!(all.iter().map(|ch| ch.seq).collect::<Vec<_>>(), seqs);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    assert!(all.iter().all(|ch| ch.kind == ChangeKind::InstanceStored && ch.study_uid == "1.2.3.1" && ch.at_ms > 0));
    assert_eq!(all[2].sop_uid, "1.2.3.1.1.3");
    let page = c.changes_since(seqs[1], 2).await.unwrap();
    assert_eq!(page.iter().map(|ch| ch.seq).collect::<Vec<_>>(), vec![seqs[2], seqs[3]]);
    assert!(c.changes_since(seqs[4], 10).await.unwrap().is_empty());
    assert_eq!(c.last_change_seq().await.unwrap(), seqs[4], "the head is the latest change");
}

pub async fn reports_are_recorded_with_their_change(c: &dyn Catalog) {
    let head = c.last_change_seq().await.unwrap();
    let report = |body: &str, at_ms: i64| crate::NewReport {
        study_uid: "1.2.9.1".into(),
        source: "text".into(),
        lang: "fr".into(),
        body: body.into(),
        at_ms,
        audit: None,
    };
    let first = c.add_report(&report("Nodule pulmonaire.", 1000)).await.unwrap();
    let second = c.add_report(&report("Pas d'épanchement.", 2000)).await.unwrap();
    assert!(second > first);
    let changes = c.changes_since(head, 10).await.unwrap();
    let kinds: Vec<(&ChangeKind, &str, &str)> = changes.iter().map(|ch| (&ch.kind, ch.study_uid.as_str(), ch.sop_uid.as_str())).collect();
    assert_eq!(kinds, [(&ChangeKind::ReportAdded, "1.2.9.1", ""), (&ChangeKind::ReportAdded, "1.2.9.1", "")]);
    let stored = c.reports_of("1.2.9.1").await.unwrap();
    let bodies: Vec<(&str, &str, i64)> = stored.iter().map(|r| (r.body.as_str(), r.lang.as_str(), r.received_at_ms)).collect();
    assert_eq!(bodies, [("Nodule pulmonaire.", "fr", 1000), ("Pas d'épanchement.", "fr", 2000)]);
    assert!(c.reports_of("1.2.9.2").await.unwrap().is_empty());
    assert_eq!(c.report_study(second).await.unwrap().as_deref(), Some("1.2.9.1"));
    assert_eq!(c.report_study(second + 100).await.unwrap(), None);
    let seq = c.request_search_reindex(3000).await.unwrap();
    let last = c.changes_since(seq - 1, 10).await.unwrap();
    assert_eq!(last.iter().map(|ch| (&ch.kind, ch.seq)).collect::<Vec<_>>(), [(&ChangeKind::SearchReindex, seq)]);
    // Studies by key: every page continues where the last ended.
    for k in 1..=3 {
        c.register(
            &new_instance(&format!("1.2.9.{}", 10 + k), &format!("1.2.9.{}.1", 10 + k), &format!("1.2.9.{}.1.1", 10 + k)),
            VersionPolicy::Reject,
        )
        .await
        .unwrap();
    }
    let first_page = c.studies_after(0, 2).await.unwrap();
    let second_page = c.studies_after(first_page[1].0, 2).await.unwrap();
    let uids: Vec<&str> = first_page.iter().chain(&second_page).map(|(_, uid)| uid.as_str()).collect();
    assert_eq!(uids, ["1.2.9.11", "1.2.9.12", "1.2.9.13"]);
}

pub async fn instances_in_scope_and_order(c: &dyn Catalog) {
    // Registered out of order; expected: series 1 (instances 1, 2, none), series 2, then the
    // series without a number.
    let mk = |series: &str, series_no: Option<i64>, sop: &str, no: Option<i64>| {
        let mut n = new_instance("1.2.3.1", series, sop);
        n.series.series_number = series_no;
        n.instance.instance_number = no;
        n
    };
    let all = [
        mk("1.2.3.1.3", None, "1.2.3.1.3.1", Some(1)),
        mk("1.2.3.1.2", Some(2), "1.2.3.1.2.9", Some(1)),
        mk("1.2.3.1.1", Some(1), "1.2.3.1.1.5", None),
        mk("1.2.3.1.1", Some(1), "1.2.3.1.1.7", Some(2)),
        mk("1.2.3.1.1", Some(1), "1.2.3.1.1.8", Some(1)),
    ];
    for n in &all {
        store(c, n).await;
    }
    store(c, &new_instance("1.2.3.2", "1.2.3.2.1", "1.2.3.2.1.1")).await;
    c.register(&new_bytes(all[4].clone(), "prior"), VersionPolicy::KeepBoth).await.unwrap();
    let study = StudyUid::new("1.2.3.1").unwrap();
    let scope = Scope { study: study.clone(), series: None, instance: None };
    let got: Vec<String> =
        c.instances_in(&scope, &Visibility::ALL).await.unwrap().iter().map(|r| r.instance.sop_uid.as_str().to_owned()).collect();
    assert_eq!(got, vec!["1.2.3.1.1.8", "1.2.3.1.1.7", "1.2.3.1.1.5", "1.2.3.1.2.9", "1.2.3.1.3.1"]);
    let series_scope = Scope { series: Some(all[1].series.series_uid.clone()), ..scope.clone() };
    assert_eq!(c.instances_in(&series_scope, &Visibility::ALL).await.unwrap().len(), 1);
    let one = Scope { series: Some(all[3].series.series_uid.clone()), instance: Some(all[3].instance.sop_uid.clone()), ..scope.clone() };
    let rows = c.instances_in(&one, &Visibility::ALL).await.unwrap();
    assert_eq!((rows.len(), rows[0].is_current), (1, true));
    let wrong_series = Scope { series: Some(all[1].series.series_uid.clone()), ..one };
    assert!(c.instances_in(&wrong_series, &Visibility::ALL).await.unwrap().is_empty());
    let unknown = Scope { study: StudyUid::new("1.2.3.404").unwrap(), series: None, instance: None };
    assert!(c.instances_in(&unknown, &Visibility::ALL).await.unwrap().is_empty());
}

pub async fn concurrent_duplicates_store_once(c: Arc<impl Catalog>) {
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (c, n) = (c.clone(), n.clone());
            tokio::spawn(async move { c.register(&n, VersionPolicy::Reject).await })
        })
        .collect();
    let (mut stored, mut duplicate) = (0, 0);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            RegisterOutcome::Stored { .. } => stored += 1,
            RegisterOutcome::Duplicate { .. } => duplicate += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((stored, duplicate), (1, 7));
    assert_eq!(c.instance_versions(&n.instance.sop_uid, &Visibility::ALL).await.unwrap().len(), 1);
    assert_eq!(c.changes_since(0, 100).await.unwrap().len(), 1);
}

pub async fn concurrent_replaces_keep_one_current(c: Arc<impl Catalog>) {
    let n = new_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1");
    let tasks: Vec<_> = (0..8)
        .map(|k| {
            let (c, n) = (c.clone(), new_bytes(n.clone(), &format!("v{k}")));
            tokio::spawn(async move { c.register(&n, VersionPolicy::Replace).await })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), RegisterOutcome::Stored { .. }));
    }
    let versions = c.instance_versions(&n.instance.sop_uid, &Visibility::ALL).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    assert_eq!(versions.iter().filter(|v| v.is_current).count(), 1);
    assert!(versions[7].is_current, "the last version written is current");
    assert_eq!(c.count_instances().await.unwrap(), 1);
}

pub async fn concurrent_change_feed_is_gapless(c: Arc<impl Catalog>) {
    // A follower polls while writers commit; if a smaller seq could commit after a larger one
    // was visible, the follower would step past it and miss it.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = {
        let (c, done) = (c.clone(), done.clone());
        tokio::spawn(async move {
            let (mut seen, mut last) = (Vec::new(), 0);
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = c.changes_since(last, 5).await.unwrap();
                match page.last() {
                    Some(end) => {
                        last = end.seq;
                        seen.extend(page.iter().map(|ch| ch.seq));
                    }
                    None if finished => return seen,
                    None => tokio::task::yield_now().await,
                }
            }
        })
    };
    let tasks: Vec<_> = (0..32)
        .map(|k| {
            let c = c.clone();
            let n = new_instance(&format!("1.2.3.{}", k % 3 + 1), &format!("1.2.3.{}.1", k % 3 + 1), &format!("1.2.5.{k}"));
            tokio::spawn(async move { c.register(&n, VersionPolicy::Reject).await })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for t in tasks {
        let RegisterOutcome::Stored { change_seq, .. } = t.await.unwrap().unwrap() else { panic!("expected Stored") };
        seqs.insert(change_seq);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = follower.await.unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(seen, seqs.into_iter().collect::<Vec<_>>());
}

pub async fn concurrent_failure_stays_alone(c: Arc<impl Catalog>) {
    // Registrations arriving together may be recorded in one transaction (group commit): one
    // that fails midway (here after its patient upsert renamed the patient, on a size no file
    // can have) must leave nothing behind and take nothing of the others with it.
    let mut all: Vec<NewInstance> = (0..15).map(|k| new_instance("1.2.6.1", "1.2.6.1.1", &format!("1.2.6.1.1.{k}"))).collect();
    all.push(all[3].clone()); // sent twice: one Stored, one Duplicate
    let mut bad = new_instance("1.2.6.1", "1.2.6.1.1", "1.2.6.1.1.99");
    bad.patient.patient_name = "Bad^Name".into();
    bad.blob.size = u64::MAX;
    all.push(bad);
    let tasks: Vec<_> = all
        .into_iter()
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move { (n.blob.size, c.register(&n, VersionPolicy::Reject).await) })
        })
        .collect();
    let (mut stored, mut duplicate) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (size, Err(e)) => {
                assert_eq!(size, u64::MAX, "only the bad one fails: {e:?}");
                assert!(matches!(e, CatalogError::Corrupt { .. }), "{e:?}");
            }
            (_, Ok(RegisterOutcome::Stored { .. })) => stored += 1,
            (_, Ok(RegisterOutcome::Duplicate { .. })) => duplicate += 1,
            (_, Ok(other)) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((stored, duplicate), (15, 1));
    assert_eq!(c.count_instances().await.unwrap(), 15);
    assert!(
        patient_ids(&*c, vec![filter(Key::PatientName, single("Bad^Name"))]).await.is_empty(),
        "the failed one's patient update is undone"
    );
    assert_eq!(patient_ids(&*c, vec![filter(Key::PatientName, single("Doe^Jane"))]).await, ["PAT-0001"]);
    assert_eq!(c.changes_since(0, 100).await.unwrap().len(), 15);
}
