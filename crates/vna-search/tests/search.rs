//! The index end to end in memory and on disk: cross-language concepts, negation ranking,
//! filters, visibility, highlights, the committed position, refused requests.

use std::sync::Arc;

use vna_search::{Report, SearchError, SearchIndex, SearchRequest, StudyDoc, Vocabulary};

fn study(uid: &str, tenant: &str, modality: &str, date: u32, report: &str) -> StudyDoc {
    StudyDoc {
        study_uid: uid.into(),
        tenant: tenant.into(),
        patient_id: format!("P{uid}"),
        patient_name: "Muller^Anna".into(),
        study_date: Some(date),
        study_description: format!("{modality} THORAX"),
        modalities: vec![modality.into()],
        institution: "Hôpital Cantonal".into(),
        reports: vec![Report { lang: None, text: report.into() }],
        ..StudyDoc::default()
    }
}

fn corpus() -> SearchIndex {
    let index = SearchIndex::in_memory(Arc::new(Vocabulary::builtin())).expect("index");
    let studies = [
        study("1", "hug/radiology", "CT", 20240105, "Nodule pulmonaire de 8 mm du lobe inférieur droit. Pas d'épanchement pleural."),
        study("2", "hug/radiology", "CT", 20240210, "Lungenrundherd im rechten Oberlappen, 6 mm. Kein Pleuraerguss."),
        study("3", "usb", "CT", 20230301, "A solitary pulmonary nodule in the left upper lobe measuring 5 mm."),
        study("4", "hug/radiology", "CT", 20240301, "Pas de nodule pulmonaire. Pas d'embolie pulmonaire. Parenchyme normal."),
        study("5", "hug/cardiology", "MR", 20220101, "Kein Hinweis auf eine Lungenembolie. Herz normal gross."),
        study("6", "hug/radiology", "CR", 20240401, "Suspicion de pneumothorax apical droit."),
    ];
    for s in &studies {
        index.upsert(s).expect("upsert");
    }
    index.commit(42).expect("commit");
    index
}

fn search(index: &SearchIndex, q: &str) -> Vec<String> {
    let req = SearchRequest { q: q.into(), limit: 10, ..SearchRequest::default() };
    index.search(&req, None).expect("search").hits.into_iter().map(|h| h.study_instance_uid).collect()
}

#[test]
fn a_finding_is_found_in_every_language_and_the_negated_one_ranks_last() {
    let index = corpus();
    for q in ["nodule pulmonaire", "Lungenrundherd", "lung nodule", "pulmonary nodules"] {
        let hits = search(&index, q);
        assert_eq!(hits.len(), 4, "{q}: {hits:?}");
        let mut top: Vec<String> = hits[..3].to_vec();
        top.sort();
        assert_eq!(top, ["1", "2", "3"], "{q}: the affirmed studies first, got {hits:?}");
        assert_eq!(hits[3], "4", "{q}: the negated study last");
    }
}

#[test]
fn broader_terms_abbreviations_and_compound_parts_find_the_narrower_finding() {
    let index = corpus();
    let lesion = search(&index, "lésion pulmonaire");
    assert!(lesion.starts_with(&["1".to_owned()]) || lesion[..3].contains(&"1".to_owned()), "{lesion:?}");
    let mut embolism = search(&index, "EP");
    embolism.sort();
    assert_eq!(embolism, ["4", "5"], "both say the embolism is absent: found all the same");
    assert!(search(&index, "Embolie").contains(&"5".to_owned()), "Lungenembolie meets Embolie");
    assert_eq!(search(&index, "PNO"), ["6"]);
    assert_eq!(search(&index, "pneumothorax")[0], "6");
}

#[test]
fn filters_and_visibility_apply_in_the_query() {
    let index = corpus();
    let req = |q: &str| SearchRequest { q: q.into(), limit: 10, ..SearchRequest::default() };
    let hug = ["hug".to_owned()];
    let got = index.search(&req("nodule"), Some(&hug)).expect("search");
    let mut uids: Vec<String> = got.hits.iter().map(|h| h.study_instance_uid.clone()).collect();
    uids.sort();
    assert_eq!(uids, ["1", "2", "4"], "the usb study is not visible to hug; Rundherd is a nodule");
    assert_eq!(got.total, 3);
    let none: [String; 0] = [];
    assert_eq!(index.search(&req("nodule"), Some(&none)).expect("search").total, 0);
    let cardiology = ["hug/cardiology".to_owned()];
    assert_eq!(index.search(&req("nodule"), Some(&cardiology)).expect("search").total, 0);

    let dated = SearchRequest { date_from: Some(20240101), date_to: Some(20240228), ..req("nodule") };
    let mut uids: Vec<String> = index.search(&dated, None).expect("search").hits.into_iter().map(|h| h.study_instance_uid).collect();
    uids.sort();
    assert_eq!(uids, ["1", "2"]);
    let by_modality = SearchRequest { modalities: vec!["mr".into()], ..req("") };
    assert_eq!(index.search(&by_modality, None).expect("search").hits[0].study_instance_uid, "5");
    let by_patient = SearchRequest { patient_id: Some("P3".into()), ..req("nodule") };
    assert_eq!(index.search(&by_patient, None).expect("search").total, 1);
    let by_institution = SearchRequest { institution: Some("HOPITAL cantonal".into()), ..req("nodule") };
    assert_eq!(index.search(&by_institution, None).expect("search").total, 4);
}

#[test]
fn hits_carry_the_study_and_highlights() {
    let index = corpus();
    let req = SearchRequest { q: "Lungenrundherd".into(), limit: 10, ..SearchRequest::default() };
    let got = index.search(&req, None).expect("search");
    let one = got.hits.iter().find(|h| h.study_instance_uid == "1").expect("study 1");
    assert_eq!((one.patient_id.as_str(), one.study_date.as_str()), ("P1", "20240105"));
    assert_eq!(one.modalities_in_study, ["CT"]);
    assert_eq!(one.highlights, ["<em>Nodule</em> <em>pulmonaire</em> de 8 mm du lobe inférieur droit. Pas d&#39;épanchement…"]);
    let json = serde_json::to_value(&got).expect("json");
    assert!(json["hits"][0]["StudyInstanceUID"].is_string() && json["total"] == 4, "{json}");
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let index = corpus();
    let bad = |req: SearchRequest| match index.search(&req, None) {
        Err(SearchError::BadRequest(reason)) => reason,
        other => panic!("{req:?} must be refused, got {other:?}"),
    };
    let ok = SearchRequest { q: "nodule".into(), limit: 10, ..SearchRequest::default() };
    assert!(bad(SearchRequest { limit: 0, ..ok.clone() }).contains("limit"));
    assert!(bad(SearchRequest { limit: 100_000, ..ok.clone() }).contains("limit"));
    assert!(bad(SearchRequest { offset: 1_000_000, ..ok.clone() }).contains("offset"));
    assert!(bad(SearchRequest { q: "\"nodule".into(), ..ok.clone() }).contains("not closed"));
    assert!(bad(SearchRequest { q: String::new(), ..ok.clone() }).contains("filter"));
    assert!(bad(SearchRequest { date_from: Some(20250101), date_to: Some(20240101), ..ok }).contains("date"));
}

#[test]
fn the_position_is_committed_with_the_documents_and_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vocab = Arc::new(Vocabulary::builtin());
    {
        let index = SearchIndex::open(dir.path(), vocab.clone()).expect("open");
        assert_eq!(index.position(), 0);
        index.upsert(&study("1", "", "CT", 20240101, "Nodule pulmonaire.")).expect("upsert");
        index.commit(7).expect("commit");
        index.upsert(&study("2", "", "CT", 20240101, "Nodule pulmonaire.")).expect("upsert");
        // Not committed: lost with the process, and its position with it.
    }
    let index = SearchIndex::open(dir.path(), vocab.clone()).expect("reopen");
    assert_eq!(index.position(), 7);
    assert_eq!(search(&index, "nodule"), ["1"]);
    index.remove("1");
    index.commit(8).expect("commit");
    assert!(search(&index, "nodule").is_empty());
    assert_eq!(index.position(), 8);

    // A rebuild: the next generation, filled and committed, then made current.
    let next = index.next_generation().expect("next generation");
    next.upsert(&study("3", "", "CT", 20240101, "Nodule pulmonaire.")).expect("upsert");
    next.commit(9).expect("commit");
    drop((next, index));
    let index = SearchIndex::open(dir.path(), vocab.clone()).expect("reopen");
    assert_eq!(index.position(), 8, "a generation not made current is not opened");
    let next = index.next_generation().expect("next generation");
    next.upsert(&study("3", "", "CT", 20240101, "Nodule pulmonaire.")).expect("upsert");
    next.commit(9).expect("commit");
    next.make_current().expect("switch");
    next.remove_other_generations().expect("clean");
    assert_eq!(search(&index, "nodule"), Vec::<String>::new(), "the old generation still answers those who hold it");
    drop((index, next));
    let reopened = SearchIndex::open(dir.path(), vocab).expect("reopen");
    assert_eq!(reopened.position(), 9);
    assert_eq!(search(&reopened, "nodule"), ["3"]);
    let generations = std::fs::read_dir(dir.path()).expect("dir").filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir())).count();
    assert_eq!(generations, 1);
}
