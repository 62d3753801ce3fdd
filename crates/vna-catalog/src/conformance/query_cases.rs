//! Conformance cases for query matching (PS3.4 §C.2.2.2), ordering and paging.

use crate::MultiFrameAttrs;
use vna_dicom::uid::SopClassUid;

use super::*;
use Key::*;

const A: &str = "1.2.4.1";
const B: &str = "1.2.4.2";
const C: &str = "1.2.4.3";

/// Three synthetic studies:
/// A: Müller^Jürgen, 2020-01-01 08:00, CT (2 instances) + SR, referring Śmith^Ánna;
/// B: Doe^John, 2021-06-15 14:30, MR;
/// C: doe^jane (lower case), 2022-12-31 23:59:59, CT (instances 5 and 10, series number 10).
pub(super) async fn world(c: &dyn Catalog) {
    let mut a1 = new_instance(A, "1.2.4.1.1", "1.2.4.1.1.1");
    a1.patient = PatientAttrs {
        patient_id: "PID-A".into(),
        issuer_of_patient_id: "SYNTH".into(),
        patient_name: "Müller^Jürgen".into(),
        patient_birth_date: "19600315".into(),
        patient_sex: "M".into(),
    };
    a1.study.study_date = "20200101".into();
    a1.study.study_time = "080000".into();
    a1.study.accession_number = "ACC-A".into();
    a1.study.study_id = "A1".into();
    a1.study.referring_physician_name = "Śmith^Ánna".into();
    a1.study.study_description = "Head CT".into();
    a1.series.series_description = "Axial 100% dose".into();
    a1.series.performed_procedure_step_start_date = "20200101".into();
    let mut a1b = new_instance(A, "1.2.4.1.1", "1.2.4.1.1.2");
    a1b.instance.instance_number = Some(2);
    let mut a2 = new_instance(A, "1.2.4.1.2", "1.2.4.1.2.1");
    a2.series.modality = "SR".into();
    a2.series.series_number = Some(2);
    a2.series.series_description = "Report".into();
    a2.instance.sop_class_uid = SopClassUid::new(BASIC_TEXT_SR).unwrap();
    for n in [&mut a1b, &mut a2] {
        n.patient = a1.patient.clone();
        n.study = a1.study.clone();
    }
    a1b.series = a1.series.clone();

    let mut b1 = new_instance(B, "1.2.4.2.1", "1.2.4.2.1.1");
    b1.patient = PatientAttrs {
        patient_id: "PID-B".into(),
        issuer_of_patient_id: "SYNTH".into(),
        patient_name: "Doe^John".into(),
        patient_birth_date: "19850720".into(),
        patient_sex: "M".into(),
    };
    b1.study.study_date = "20210615".into();
    b1.study.study_time = "143000".into();
    b1.study.accession_number = "ACC_B".into();
    b1.study.study_id = "B1".into();
    b1.study.referring_physician_name = "Jones^Bob".into();
    b1.study.study_description = "Brain MR".into();
    b1.series.modality = "MR".into();
    b1.series.series_description = "T1_SAG".into();
    b1.series.body_part_examined = "BRAIN".into();
    b1.series.performed_procedure_step_start_date = "20210615".into();
    b1.instance.sop_class_uid = SopClassUid::new(MR_IMAGE).unwrap();

    let mut c1 = new_instance(C, "1.2.4.3.1", "1.2.4.3.1.1");
    c1.patient = PatientAttrs {
        patient_id: "pid-c".into(),
        issuer_of_patient_id: "SYNTH".into(),
        patient_name: "doe^jane".into(),
        patient_birth_date: "19991231".into(),
        patient_sex: "F".into(),
    };
    c1.study.study_date = "20221231".into();
    c1.study.study_time = "235959".into();
    c1.study.accession_number = "ACC%C".into();
    c1.study.study_id = "C\\1".into();
    c1.study.study_description = "Chest [x] CT".into();
    c1.series.series_number = Some(10);
    c1.series.series_description = "Lung".into();
    c1.series.body_part_examined = "CHEST".into();
    c1.series.performed_procedure_step_start_date = "20221231".into();
    c1.instance.instance_number = Some(10);
    let mut c2 = c1.clone();
    c2.instance.sop_uid = vna_dicom::uid::SopInstanceUid::new("1.2.4.3.1.2").unwrap();
    c2.instance.instance_number = Some(5);
    c2 = new_bytes(c2, "c2");

    for n in [&a1, &a1b, &a2, &b1, &c1, &c2] {
        store(c, n).await;
    }
}

async fn studies_where(c: &dyn Catalog, key: Key, m: Matcher) -> Vec<String> {
    study_uids(c, vec![filter(key, m)]).await
}

pub async fn single_matching(c: &dyn Catalog) {
    world(c).await;
    assert_eq!(studies_where(c, PatientId, single("PID-A")).await, vec![A]);
    assert!(studies_where(c, PatientId, single("pid-a")).await.is_empty(), "case-sensitive");
    assert_eq!(studies_where(c, PatientName, single("Doe^John")).await, vec![B]);
    assert!(studies_where(c, PatientName, single("doe^john")).await.is_empty());
    assert_eq!(studies_where(c, PatientName, single("Müller^Jürgen")).await, vec![A]);
    assert_eq!(studies_where(c, AccessionNumber, single("ACC_B")).await, vec![B]);
    assert_eq!(studies_where(c, StudyId, single("A1")).await, vec![A]);
    assert_eq!(studies_where(c, PatientSex, single("F")).await, vec![C]);
    assert_eq!(studies_where(c, PatientBirthDate, single("19850720")).await, vec![B]);
    assert_eq!(studies_where(c, IssuerOfPatientId, single("SYNTH")).await, vec![C, B, A]);
    assert_eq!(studies_where(c, ReferringPhysicianName, single("Jones^Bob")).await, vec![B]);
    assert_eq!(studies_where(c, StudyUid, single(B)).await, vec![B]);
    assert_eq!(series_uids(c, vec![filter(Modality, single("CT"))]).await, vec!["1.2.4.1.1", "1.2.4.3.1"]);
    assert_eq!(series_uids(c, vec![filter(BodyPartExamined, single("BRAIN"))]).await, vec!["1.2.4.2.1"]);
    assert_eq!(sop_uids(c, vec![filter(SopClassUid, single(MR_IMAGE))]).await, vec!["1.2.4.2.1.1"]);
    assert_eq!(sop_uids(c, vec![filter(StudyUid, single(C))]).await, vec!["1.2.4.3.1.2", "1.2.4.3.1.1"]);
    assert_eq!(sop_uids(c, vec![filter(SopInstanceUid, single("1.2.4.1.2.1"))]).await, vec!["1.2.4.1.2.1"]);
    // Filters combine with AND.
    let both = vec![filter(PatientSex, single("M")), filter(StudyDescription, single("Brain MR"))];
    assert_eq!(study_uids(c, both).await, vec![B]);
}

pub async fn wildcard_matching(c: &dyn Catalog) {
    world(c).await;
    assert_eq!(studies_where(c, PatientName, wild("Doe*")).await, vec![B], "case-sensitive");
    assert_eq!(studies_where(c, PatientName, wild("*oe^*")).await, vec![C, B]);
    assert_eq!(studies_where(c, PatientName, wild("?oe^J*")).await, vec![B]);
    assert_eq!(studies_where(c, PatientName, wild("M?ller*")).await, vec![A], "? is one character, not one byte");
    assert_eq!(studies_where(c, PatientName, wild("Müller*")).await, vec![A]);
    assert_eq!(studies_where(c, PatientName, wild("*")).await, vec![C, B, A]);
    assert_eq!(studies_where(c, StudyDescription, wild("*CT")).await, vec![C, A]);
    assert!(studies_where(c, StudyDescription, wild("*ct")).await.is_empty());
    assert_eq!(studies_where(c, StudyDescription, wild("Head CT")).await, vec![A], "no wildcard = single value");
    assert_eq!(series_uids(c, vec![filter(SeriesDescription, wild("T1?SAG"))]).await, vec!["1.2.4.2.1"]);
    assert_eq!(sop_uids(c, vec![filter(SopInstanceUid, wild("1.2.4.3.*"))]).await, vec!["1.2.4.3.1.2", "1.2.4.3.1.1"]);
}

pub async fn wildcard_escaping(c: &dyn Catalog) {
    world(c).await;
    assert_eq!(studies_where(c, AccessionNumber, wild("ACC%*")).await, vec![C], "% is literal");
    assert_eq!(studies_where(c, AccessionNumber, wild("ACC_*")).await, vec![B], "_ is literal");
    assert_eq!(studies_where(c, AccessionNumber, wild("ACC?*")).await, vec![C, B, A]);
    assert_eq!(studies_where(c, StudyId, wild("C\\?")).await, vec![C], "backslash is literal");
    assert_eq!(studies_where(c, StudyId, wild("C\\*")).await, vec![C]);
    assert!(studies_where(c, StudyId, wild("C?\\*")).await.is_empty());
    assert_eq!(studies_where(c, StudyDescription, wild("Chest [x]*")).await, vec![C], "[ is literal");
    assert_eq!(studies_where(c, StudyDescription, wild("Chest ?x]*")).await, vec![C]);
    assert!(studies_where(c, StudyDescription, wild("Chest [xy]*")).await.is_empty());
    assert_eq!(series_uids(c, vec![filter(SeriesDescription, wild("*100%*"))]).await, vec!["1.2.4.1.1"]);
}

pub async fn date_and_time_ranges(c: &dyn Catalog) {
    world(c).await;
    let date = |f, t| studies_where(c, StudyDate, range(f, t));
    assert_eq!(date(Some("20210615"), None).await, vec![C, B], "open end, inclusive");
    assert_eq!(date(None, Some("20210615")).await, vec![B, A], "open start, inclusive");
    assert_eq!(date(Some("20200102"), Some("20221230")).await, vec![B]);
    assert_eq!(date(Some("20200101"), Some("20200101")).await, vec![A]);
    assert_eq!(date(None, None).await, vec![C, B, A]);
    assert!(date(Some("20230101"), None).await.is_empty());
    assert_eq!(studies_where(c, StudyTime, range(Some("140000"), None)).await, vec![C, B]);
    assert_eq!(studies_where(c, StudyTime, range(None, Some("143000"))).await, vec![B, A]);
    assert_eq!(studies_where(c, PatientBirthDate, range(None, Some("19700101"))).await, vec![A]);
    let pps = |f, t| series_uids(c, vec![filter(PerformedProcedureStepStartDate, range(f, t))]);
    assert_eq!(pps(Some("20210101"), Some("20211231")).await, vec!["1.2.4.2.1"]);
}

pub async fn integer_matching(c: &dyn Catalog) {
    world(c).await;
    let series_no = |m| series_uids(c, vec![filter(SeriesNumber, m)]);
    assert_eq!(series_no(single("10")).await, vec!["1.2.4.3.1"]);
    assert_eq!(series_no(range(Some("2"), None)).await, vec!["1.2.4.1.2", "1.2.4.3.1"], "numeric, not text order");
    assert_eq!(series_no(range(None, Some("1"))).await, vec!["1.2.4.1.1", "1.2.4.2.1"]);
    assert_eq!(series_no(list(&["1", "10"])).await, vec!["1.2.4.1.1", "1.2.4.2.1", "1.2.4.3.1"]);
    assert!(series_no(single("x")).await.is_empty());
    assert!(series_no(range(Some("x"), None)).await.is_empty());
    let inst_no = |m| sop_uids(c, vec![filter(InstanceNumber, m)]);
    assert_eq!(inst_no(range(Some("5"), Some("10"))).await, vec!["1.2.4.3.1.2", "1.2.4.3.1.1"]);
    assert_eq!(inst_no(single("2")).await, vec!["1.2.4.1.1.2"]);
}

pub async fn uid_lists(c: &dyn Catalog) {
    world(c).await;
    assert_eq!(studies_where(c, StudyUid, list(&[A, C, "1.2.4.404"])).await, vec![C, A]);
    assert!(studies_where(c, StudyUid, list(&[])).await.is_empty());
    let series = series_uids(c, vec![filter(SeriesUid, list(&["1.2.4.2.1", "1.2.4.1.2"]))]).await;
    assert_eq!(series, vec!["1.2.4.2.1", "1.2.4.1.2"]);
    let sops = sop_uids(c, vec![filter(SopInstanceUid, list(&["1.2.4.3.1.1", "1.2.4.1.1.1"]))]).await;
    assert_eq!(sops, vec!["1.2.4.1.1.1", "1.2.4.3.1.1"]);
    assert_eq!(studies_where(c, AccessionNumber, list(&["ACC-A", "ACC_B"])).await, vec![B, A]);
}

pub async fn modalities_in_study(c: &dyn Catalog) {
    world(c).await;
    assert_eq!(studies_where(c, ModalitiesInStudy, single("CT")).await, vec![C, A]);
    assert_eq!(studies_where(c, ModalitiesInStudy, list(&["MR", "US"])).await, vec![B]);
    assert_eq!(studies_where(c, ModalitiesInStudy, single("SR")).await, vec![A]);
    assert!(studies_where(c, ModalitiesInStudy, single("US")).await.is_empty());
    // At series level it selects whole studies, not only the matching series.
    let series = series_uids(c, vec![filter(ModalitiesInStudy, single("SR"))]).await;
    assert_eq!(series, vec!["1.2.4.1.1", "1.2.4.1.2"]);
    let rows = c.query_studies(&query(Level::Study, vec![filter(StudyUid, single(A))]), &Visibility::ALL).await.unwrap();
    assert_eq!(rows[0].modalities_in_study, vec!["CT", "SR"]);
    assert_eq!((rows[0].number_of_series, rows[0].number_of_instances), (2, 3));
}

pub async fn lower_level_filters_at_higher_levels(c: &dyn Catalog) {
    world(c).await;
    assert_eq!(studies_where(c, Modality, single("MR")).await, vec![B]);
    assert_eq!(studies_where(c, BodyPartExamined, single("CHEST")).await, vec![C]);
    assert_eq!(studies_where(c, SopClassUid, single(BASIC_TEXT_SR)).await, vec![A]);
    assert_eq!(studies_where(c, InstanceNumber, single("5")).await, vec![C]);
    let same_series = vec![filter(SeriesDescription, single("Lung")), filter(Modality, single("MR"))];
    assert!(study_uids(c, same_series).await.is_empty());
    assert_eq!(series_uids(c, vec![filter(SopInstanceUid, single("1.2.4.1.1.2"))]).await, vec!["1.2.4.1.1"]);
    // The study row still counts all of the study's series and instances.
    let rows = c.query_studies(&query(Level::Study, vec![filter(Modality, single("SR"))]), &Visibility::ALL).await.unwrap();
    assert_eq!((rows.len(), rows[0].number_of_series, rows[0].number_of_instances), (1, 2, 3));
}

pub async fn fuzzy_person_names(c: &dyn Catalog) {
    world(c).await;
    for q in ["mull", "JUR", "mull jur", "müll", "jurgen muller", "MÜLLER^JÜRGEN", "mul*"] {
        assert_eq!(studies_where(c, PatientName, fuzzy(q)).await, vec![A], "query {q:?}");
    }
    for q in ["ller", "mull xyz", "jurx"] {
        assert!(studies_where(c, PatientName, fuzzy(q)).await.is_empty(), "query {q:?}");
    }
    assert_eq!(studies_where(c, PatientName, fuzzy("doe")).await, vec![C, B]);
    assert_eq!(studies_where(c, PatientName, fuzzy("DOE JO")).await, vec![B]);
    for q in ["smi", "anna", "ÁNNA", "smith ann"] {
        assert_eq!(studies_where(c, ReferringPhysicianName, fuzzy(q)).await, vec![A], "query {q:?}");
    }
    assert!(studies_where(c, PatientName, single("müller^jürgen")).await.is_empty(), "single stays exact");
    assert_eq!(series_uids(c, vec![filter(PatientName, fuzzy("mull"))]).await, vec!["1.2.4.1.1", "1.2.4.1.2"]);
    assert_eq!(sop_uids(c, vec![filter(PatientName, fuzzy("jane"))]).await, vec!["1.2.4.3.1.2", "1.2.4.3.1.1"]);
}

pub async fn limit_and_offset(c: &dyn Catalog) {
    world(c).await;
    let page = |limit, offset| async move {
        let q = Query { level: Level::Study, filters: vec![], limit, offset };
        c.query_studies(&q, &Visibility::ALL).await.unwrap().into_iter().map(|r| r.study.study_uid.as_str().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(page(Some(2), 0).await, vec![C, B]);
    assert_eq!(page(Some(2), 2).await, vec![A]);
    assert_eq!(page(None, 1).await, vec![B, A]);
    assert!(page(Some(0), 0).await.is_empty());
    assert!(page(Some(5), 3).await.is_empty());
    let q = Query { level: Level::Series, filters: vec![], limit: Some(1), offset: 1 };
    let series: Vec<_> = c.query_series(&q, &Visibility::ALL).await.unwrap().into_iter().map(|r| r.series.series_uid.to_string()).collect();
    assert_eq!(series, vec!["1.2.4.2.1"]);
    let q = Query { level: Level::Instance, filters: vec![filter(StudyUid, single(A))], limit: Some(2), offset: 1 };
    let sops: Vec<_> = c.query_instances(&q, &Visibility::ALL).await.unwrap().into_iter().map(|r| r.instance.sop_uid.to_string()).collect();
    assert_eq!(sops, vec!["1.2.4.1.2.1", "1.2.4.1.1.2"]);
}

/// Keyset pages of a filtered match (a legal hold over a set): every matching instance once,
/// in key order, whatever the page size; the same keys as the one-answer query.
pub async fn keyset_pages_of_a_match(c: &dyn Catalog) {
    world(c).await;
    let all = |filters: Vec<Filter>, size: u32| async move {
        let q = query(Level::Instance, filters);
        let (mut out, mut after) = (Vec::new(), 0);
        loop {
            let page = c.query_instances_after(&q, after, size, &Visibility::ALL).await.unwrap();
            assert!(page.len() <= size as usize);
            let Some(last) = page.last() else { return out };
            assert!(last.pk > after && page.windows(2).all(|w| w[0].pk < w[1].pk), "key order");
            after = last.pk;
            out.extend(page.iter().map(|r| r.instance.sop_uid.to_string()));
        }
    };
    for size in [1, 2, 3, 100] {
        assert_eq!(all(vec![filter(Modality, single("CT"))], size).await, vec!["1.2.4.1.1.1", "1.2.4.1.1.2", "1.2.4.3.1.1", "1.2.4.3.1.2"]);
        assert_eq!(all(vec![filter(ModalitiesInStudy, single("SR"))], size).await, vec!["1.2.4.1.1.1", "1.2.4.1.1.2", "1.2.4.1.2.1"]);
        assert_eq!(all(vec![], size).await.len(), 6);
    }
    let dated = vec![filter(StudyDate, Matcher::Range { from: Some("20210101".into()), to: None })];
    let one_answer = sop_uids(c, dated.clone()).await;
    let mut paged = all(dated, 1).await;
    paged.sort();
    let mut expected = one_answer.clone();
    expected.sort();
    assert_eq!((paged, one_answer.len()), (expected, 3));
    assert!(all(vec![filter(PatientId, single("PID-NONE"))], 2).await.is_empty());
}

pub async fn result_ordering(c: &dyn Catalog) {
    // Studies: date desc, time desc, UID; empty dates last.
    let specs = [
        ("1.2.6.3", "20240101", "120000", Some(3)),
        ("1.2.6.1", "20240101", "120000", None),
        ("1.2.6.2", "20240101", "130000", Some(1)),
        ("1.2.6.4", "", "", Some(2)),
        ("1.2.6.5", "20240102", "", Some(1)),
    ];
    for (k, (study, date, time, series_no)) in specs.iter().enumerate() {
        let mut n = new_instance(study, &format!("{study}.1"), &format!("{study}.1.1"));
        n.study.study_date = (*date).into();
        n.study.study_time = (*time).into();
        n.series.series_number = *series_no;
        n.instance.instance_number = Some(5 - k as i64);
        store(c, &n).await;
    }
    assert_eq!(study_uids(c, vec![]).await, vec!["1.2.6.5", "1.2.6.2", "1.2.6.1", "1.2.6.3", "1.2.6.4"]);
    // Series: number (absent last), then UID.
    assert_eq!(series_uids(c, vec![]).await, vec!["1.2.6.2.1", "1.2.6.5.1", "1.2.6.4.1", "1.2.6.3.1", "1.2.6.1.1"]);
    // Instances: number, then UID.
    assert_eq!(sop_uids(c, vec![]).await, vec!["1.2.6.5.1.1", "1.2.6.4.1.1", "1.2.6.2.1.1", "1.2.6.1.1.1", "1.2.6.3.1.1"]);
}

/// A slide's parts found by their multi-frame organisation: the two instances of one
/// concatenation, a TILED_SPARSE level, a level by its total pixel matrix; the attributes
/// come back on every row.
pub async fn multi_frame_matching(c: &dyn Catalog) {
    world(c).await;
    let slide = |sop: &str, n: i64, organisation: &str, width: i64| {
        let mut i = new_instance("1.2.4.9", "1.2.4.9.1", sop);
        i.instance.instance_number = Some(n);
        i.instance.multi_frame = MultiFrameAttrs {
            concatenation_uid: (n <= 2).then(|| "1.2.4.9.100".to_owned()),
            concatenation_source: (n <= 2).then(|| "1.2.4.9.1.99".to_owned()),
            in_concatenation_number: (n <= 2).then_some(n),
            dimension_organization_type: Some(organisation.to_owned()),
            total_pixel_matrix_columns: Some(width),
            total_pixel_matrix_rows: Some(width / 2),
        };
        new_bytes(i, sop)
    };
    for n in [
        slide("1.2.4.9.1.1", 1, "TILED_FULL", 4096),
        slide("1.2.4.9.1.2", 2, "TILED_FULL", 4096),
        slide("1.2.4.9.1.3", 3, "TILED_SPARSE", 1024),
    ] {
        store(c, &n).await;
    }
    assert_eq!(sop_uids(c, vec![filter(ConcatenationUid, single("1.2.4.9.100"))]).await, vec!["1.2.4.9.1.1", "1.2.4.9.1.2"]);
    assert_eq!(sop_uids(c, vec![filter(ConcatenationSource, list(&["1.2.4.9.1.99"]))]).await.len(), 2);
    assert_eq!(sop_uids(c, vec![filter(InConcatenationNumber, single("2"))]).await, vec!["1.2.4.9.1.2"]);
    assert_eq!(sop_uids(c, vec![filter(DimensionOrganizationType, single("TILED_SPARSE"))]).await, vec!["1.2.4.9.1.3"]);
    assert_eq!(sop_uids(c, vec![filter(TotalPixelMatrixColumns, range(Some("2000"), None))]).await.len(), 2);
    assert_eq!(sop_uids(c, vec![filter(TotalPixelMatrixRows, single("512"))]).await, vec!["1.2.4.9.1.3"]);
    let rows = c
        .query_instances(&query(Level::Instance, vec![filter(InConcatenationNumber, single("1"))]), &Visibility::ALL)
        .await
        .expect("query");
    assert_eq!(rows.len(), 1);
    let m = &rows[0].instance.multi_frame;
    assert_eq!(
        (m.concatenation_uid.as_deref(), m.in_concatenation_number, m.total_pixel_matrix_columns),
        (Some("1.2.4.9.100"), Some(1), Some(4096))
    );
    // Instances without these attributes match no value of them (a lone `*` is universal).
    assert_eq!(sop_uids(c, vec![filter(DimensionOrganizationType, wild("TILED*"))]).await.len(), 3);
}
