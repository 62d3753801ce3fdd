//! Conformance cases for visibility: tenant grants and signed-link scopes applied in the
//! statement itself, so rows, counters and paging all see the same subset; a study keeps the
//! tenant of its first instance.

use super::*;
use crate::Scope;

const HUG: &str = "1.2.9.1";
const HUG_RAD: &str = "1.2.9.2";
const HUGO: &str = "1.2.9.3";
const CHUV: &str = "1.2.9.4";

/// Patient P has a `hug` study and a `hugo` study (a name that shares the prefix but is not
/// below it); patient Q a `hug/radiology` study of two series and a `chuv` study.
async fn tenants_world(c: &dyn Catalog) {
    let mut p1 = new_instance(HUG, "1.2.9.1.1", "1.2.9.1.1.1");
    p1.tenant = "hug".into();
    let mut p3 = new_instance(HUGO, "1.2.9.3.1", "1.2.9.3.1.1");
    p3.tenant = "hugo".into();
    let q = PatientAttrs { patient_id: "PAT-Q".into(), ..p1.patient.clone() };
    let mut q2a = new_instance(HUG_RAD, "1.2.9.2.1", "1.2.9.2.1.1");
    let mut q2b = new_instance(HUG_RAD, "1.2.9.2.2", "1.2.9.2.2.1");
    q2b.series.series_number = Some(2);
    let mut q4 = new_instance(CHUV, "1.2.9.4.1", "1.2.9.4.1.1");
    for n in [&mut q2a, &mut q2b] {
        n.tenant = "hug/radiology".into();
        n.patient = q.clone();
    }
    q4.tenant = "chuv".into();
    q4.patient = q;
    for n in [&p1, &p3, &q2a, &q2b, &q4] {
        store(c, n).await;
    }
}

fn grants(list: &[&str]) -> Visibility {
    Visibility { tenants: Some(list.iter().map(|s| (*s).to_owned()).collect()), only: None, rejected: false }
}

async fn studies(c: &dyn Catalog, v: &Visibility) -> Vec<String> {
    let rows = c.query_studies(&query(Level::Study, vec![]), v).await.unwrap();
    rows.into_iter().map(|r| r.study.study_uid.as_str().to_owned()).collect()
}

pub async fn tenant_grants_bound_every_read(c: &dyn Catalog) {
    tenants_world(c).await;
    let hug = grants(&["hug"]);
    assert_eq!(studies(c, &Visibility::ALL).await, vec![HUG, HUG_RAD, HUGO, CHUV]);
    assert_eq!(studies(c, &hug).await, vec![HUG, HUG_RAD], "hug covers hug/radiology, not hugo");
    assert_eq!(studies(c, &grants(&["hug/radiology"])).await, vec![HUG_RAD], "a department does not see its parent");
    assert_eq!(studies(c, &grants(&["hugo", "chuv"])).await, vec![HUGO, CHUV]);
    assert!(studies(c, &grants(&[])).await.is_empty(), "no grant sees nothing");
    assert!(studies(c, &grants(&["hu"])).await.is_empty(), "a grant is a whole path segment");

    // Series and instances follow their study; paging counts only what is visible.
    let series = c.query_series(&query(Level::Series, vec![]), &hug).await.unwrap();
    assert_eq!(series.len(), 3);
    let instances = c.query_instances(&query(Level::Instance, vec![]), &hug).await.unwrap();
    assert_eq!(instances.len(), 3);
    assert!(instances.iter().all(|r| r.tenant == "hug" || r.tenant == "hug/radiology"), "{instances:?}");
    let page = Query { level: Level::Instance, filters: vec![], limit: Some(2), offset: 2 };
    assert_eq!(c.query_instances(&page, &hug).await.unwrap().len(), 1, "the offset skips visible rows only");
    let by_uid = vec![filter(Key::StudyUid, single(CHUV))];
    assert!(c.query_series(&query(Level::Series, by_uid), &hug).await.unwrap().is_empty(), "a UID does not open a hidden study");

    // Patients: visible when one of their studies is, counters over visible studies only.
    let patients = c.query_patients(&query(Level::Patient, vec![]), &hug).await.unwrap();
    let counters: Vec<_> =
        patients.iter().map(|r| (r.patient.patient_id.as_str(), r.number_of_studies, r.number_of_series, r.number_of_instances)).collect();
    assert_eq!(counters, vec![("PAT-0001", 1, 1, 1), ("PAT-Q", 1, 2, 2)]);
    let patients = c.query_patients(&query(Level::Patient, vec![]), &grants(&["chuv"])).await.unwrap();
    assert_eq!(patients.iter().map(|r| r.patient.patient_id.as_str()).collect::<Vec<_>>(), vec!["PAT-Q"]);
    let by_modality = vec![filter(Key::Modality, single("CT"))];
    assert_eq!(c.query_patients(&query(Level::Patient, by_modality), &grants(&["hugo"])).await.unwrap().len(), 1);

    // Reads by UID and scope.
    let hidden = SopInstanceUid::new("1.2.9.4.1.1").unwrap();
    assert!(c.current_instance(&hidden, &hug).await.unwrap().is_none());
    assert!(c.instance_versions(&hidden, &hug).await.unwrap().is_empty());
    assert_eq!(c.current_instance(&hidden, &Visibility::ALL).await.unwrap().unwrap().tenant, "chuv");
    let chuv_scope = Scope { study: StudyUid::new(CHUV).unwrap(), series: None, instance: None };
    assert!(c.instances_in(&chuv_scope, &hug).await.unwrap().is_empty());
    assert_eq!(c.instances_in(&chuv_scope, &grants(&["chuv"])).await.unwrap().len(), 1);
}

pub async fn link_scope_bounds_every_read(c: &dyn Catalog) {
    tenants_world(c).await;
    let study = Scope { study: StudyUid::new(HUG_RAD).unwrap(), series: None, instance: None };
    let link = Visibility { tenants: None, only: Some(study.clone()), rejected: false };
    assert_eq!(studies(c, &link).await, vec![HUG_RAD]);
    assert_eq!(c.query_series(&query(Level::Series, vec![]), &link).await.unwrap().len(), 2);
    let patients = c.query_patients(&query(Level::Patient, vec![]), &link).await.unwrap();
    assert_eq!(patients.iter().map(|r| (r.patient.patient_id.as_str(), r.number_of_studies)).collect::<Vec<_>>(), vec![("PAT-Q", 1)]);
    let other = SopInstanceUid::new("1.2.9.1.1.1").unwrap();
    assert!(c.current_instance(&other, &link).await.unwrap().is_none(), "an instance of another study");

    let one = Scope {
        study: study.study.clone(),
        series: Some(SeriesUid::new("1.2.9.2.2").unwrap()),
        instance: Some(SopInstanceUid::new("1.2.9.2.2.1").unwrap()),
    };
    let link = Visibility { tenants: None, only: Some(one.clone()), rejected: false };
    let series = c.query_series(&query(Level::Series, vec![]), &link).await.unwrap();
    assert_eq!(series.iter().map(|r| (r.series.series_uid.as_str(), r.number_of_instances)).collect::<Vec<_>>(), vec![("1.2.9.2.2", 1)]);
    let study_rows = c.query_studies(&query(Level::Study, vec![]), &link).await.unwrap();
    let counters: Vec<_> = study_rows.iter().map(|r| (r.number_of_series, r.number_of_instances)).collect();
    assert_eq!(counters, vec![(1, 1)], "a link's study counts what the link shows");
    assert_eq!(c.query_instances(&query(Level::Instance, vec![]), &link).await.unwrap().len(), 1);
    assert_eq!(c.instances_in(&study, &link).await.unwrap().len(), 1, "the study scope narrowed to the linked instance");
    let sibling = SopInstanceUid::new("1.2.9.2.1.1").unwrap();
    assert!(c.current_instance(&sibling, &link).await.unwrap().is_none());

    // A link inside a tenant grant it does not belong to shows nothing.
    let outside = Visibility { tenants: Some(vec!["chuv".into()]), only: Some(one), rejected: false };
    assert!(c.query_instances(&query(Level::Instance, vec![]), &outside).await.unwrap().is_empty());
}

pub async fn study_keeps_its_tenant(c: &dyn Catalog) {
    let mut first = new_instance("1.2.9.5", "1.2.9.5.1", "1.2.9.5.1.1");
    first.tenant = "hug".into();
    store(c, &first).await;
    assert_eq!(c.study_tenant(&first.study.study_uid).await.unwrap().as_deref(), Some("hug"));
    assert!(c.study_tenant(&StudyUid::new("1.2.9.6").unwrap()).await.unwrap().is_none());
    // What a store settles before committing its object: both at once.
    let (tenant, current) = c.before_store(&first.study.study_uid, &first.instance.sop_uid).await.unwrap();
    assert_eq!(tenant.as_deref(), Some("hug"));
    assert_eq!(current.map(|r| (r.instance.sop_uid, r.tenant)), Some((first.instance.sop_uid.clone(), "hug".to_owned())));
    let unknown = SopInstanceUid::new("1.2.9.6.1.1").unwrap();
    let (tenant, current) = c.before_store(&StudyUid::new("1.2.9.6").unwrap(), &unknown).await.unwrap();
    assert!(tenant.is_none() && current.is_none());
    let (tenant, current) = c.before_store(&first.study.study_uid, &unknown).await.unwrap();
    assert!(tenant.as_deref() == Some("hug") && current.is_none());
    let before = c.changes_since(0, 100).await.unwrap().len();
    let mut other = new_instance("1.2.9.5", "1.2.9.5.2", "1.2.9.5.2.1");
    other.tenant = "chuv".into();
    let outcome = c.register(&other, VersionPolicy::Reject).await.unwrap();
    assert!(matches!(outcome, RegisterOutcome::TenantConflict), "{outcome:?}");
    assert!(c.current_instance(&other.instance.sop_uid, &Visibility::ALL).await.unwrap().is_none(), "nothing written");
    assert_eq!(c.changes_since(0, 100).await.unwrap().len(), before, "no change recorded");
    let series = c.query_series(&query(Level::Series, vec![]), &Visibility::ALL).await.unwrap();
    assert_eq!(series.len(), 1, "no series row left behind");
    // The same tenant is welcome.
    other.tenant = "hug".into();
    store(c, &other).await;
    assert_eq!(
        c.instances_in(&Scope { study: first.study.study_uid.clone(), series: None, instance: None }, &grants(&["hug"]))
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn latest_study_date_of_a_patient(c: &dyn Catalog) {
    let pid = |n: &mut crate::NewInstance, id: &str, date: &str| {
        n.patient.patient_id = id.into();
        n.study.study_date = date.into();
    };
    assert_eq!(c.latest_study_date("LSD-1", "SYNTH").await.unwrap(), None);
    for (study, date) in [("1.2.9.40", "20200101"), ("1.2.9.41", "20240601"), ("1.2.9.42", "")] {
        let mut n = new_instance(study, &format!("{study}.1"), &format!("{study}.1.1"));
        pid(&mut n, "LSD-1", date);
        n.tenant = if study.ends_with('1') { "chuv".into() } else { "hug".into() };
        store(c, &n).await;
    }
    let mut other = new_instance("1.2.9.43", "1.2.9.43.1", "1.2.9.43.1.1");
    pid(&mut other, "LSD-2", "20250101");
    store(c, &other).await;
    assert_eq!(c.latest_study_date("LSD-1", "SYNTH").await.unwrap().as_deref(), Some("20240601"), "across tenants, undated ignored");
    assert_eq!(c.latest_study_date("LSD-1", "OTHER-ISSUER").await.unwrap(), None);
}

pub async fn api_keys_round_trip(c: &dyn Catalog) {
    let key = crate::ApiKey {
        id: "k1".into(),
        secret_sha256: fake_sha("secret"),
        name: "CT scanner, room 3".into(),
        scopes: vec!["system/ImagingStudy.c".into(), "system/ImagingStudy.r".into()],
        tenants: vec!["hug/radiology".into()],
        created_at_ms: 1000,
        expires_at_ms: Some(5000),
        revoked_at_ms: None,
    };
    c.create_api_key(&key).await.unwrap();
    assert!(c.create_api_key(&key).await.is_err(), "an id is unique");
    let second = crate::ApiKey { id: "k2".into(), created_at_ms: 2000, expires_at_ms: None, ..key.clone() };
    c.create_api_key(&second).await.unwrap();
    assert_eq!(c.api_key("k1").await.unwrap().as_ref(), Some(&key));
    assert!(c.api_key("nope").await.unwrap().is_none());
    assert_eq!(c.api_keys().await.unwrap().iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), vec!["k1", "k2"]);
    assert!(key.is_active(4999) && !key.is_active(5000), "expiry is exclusive");
    assert!(c.revoke_api_key("k1", 3000).await.unwrap());
    assert!(!c.revoke_api_key("k1", 3500).await.unwrap(), "already revoked");
    assert!(!c.revoke_api_key("nope", 3500).await.unwrap());
    let revoked = c.api_key("k1").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at_ms, Some(3000), "the first revocation time stays");
    assert!(!revoked.is_active(1500));
    assert!(c.api_key("k2").await.unwrap().unwrap().is_active(i64::MAX - 1));
}
