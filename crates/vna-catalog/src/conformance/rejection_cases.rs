//! Conformance cases for IHE IOCM rejection notes: what a note names is hidden at once from
//! every clinical read and counter, remembered for instances that have not arrived, kept within
//! the note's tenant, and still listed for administrators and the archive's own work.

use super::*;
use crate::{ChangeKind, RejectedRef, RejectionNote, Scope};

const STUDY: &str = "1.2.11.1";
const SERIES: &str = "1.2.11.1.1";
const KOS: &str = "1.2.840.10008.5.1.4.1.1.88.59";

fn reference(study: &str, series: &str, sop: &str) -> RejectedRef {
    RejectedRef {
        study_uid: StudyUid::new(study).unwrap(),
        series_uid: SeriesUid::new(series).unwrap(),
        sop_uid: SopInstanceUid::new(sop).unwrap(),
    }
}

/// A rejection note in `study` (its own series) naming `refs`.
fn note(study: &str, sop: &str, code: &str, refs: Vec<RejectedRef>) -> NewInstance {
    let mut n = new_instance(study, &format!("{study}.99"), sop);
    n.series.modality = "KO".into();
    n.instance.sop_class_uid = SopClassUid::new(KOS).unwrap();
    n.rejects = Some(RejectionNote { code: code.into(), references: refs });
    n
}

fn clinical() -> Visibility {
    Visibility::default()
}

async fn live_sops(c: &dyn Catalog, v: &Visibility) -> Vec<String> {
    let rows = c.query_instances(&query(Level::Instance, vec![]), v).await.unwrap();
    rows.into_iter().map(|r| r.instance.sop_uid.as_str().to_owned()).collect()
}

pub async fn rejection_hides_from_every_read(c: &dyn Catalog) {
    let a = new_instance(STUDY, SERIES, "1.2.11.1.1.1");
    let mut b = new_instance(STUDY, SERIES, "1.2.11.1.1.2");
    b.instance.instance_number = Some(2);
    store(c, &a).await;
    store(c, &b).await;
    let feed_before = c.changes_since(0, 100).await.unwrap().last().unwrap().seq;

    let n = note(STUDY, "1.2.11.1.99.1", "113001", vec![reference(STUDY, SERIES, "1.2.11.1.1.1")]);
    let outcome = c.register(&n, VersionPolicy::Reject).await.unwrap();
    assert!(matches!(outcome, RegisterOutcome::Stored { .. }), "{outcome:?}");

    // Gone for clinical readers: lookups, scopes, queries at every level and their counters.
    let a_uid = &a.instance.sop_uid;
    assert!(c.current_instance(a_uid, &clinical()).await.unwrap().is_none());
    assert!(c.instance_versions(a_uid, &clinical()).await.unwrap().is_empty());
    let scope = Scope { study: a.study.study_uid.clone(), series: None, instance: None };
    let in_study: Vec<String> =
        c.instances_in(&scope, &clinical()).await.unwrap().into_iter().map(|r| r.instance.sop_uid.as_str().to_owned()).collect();
    assert_eq!(in_study, vec!["1.2.11.1.1.2", "1.2.11.1.99.1"]);
    assert_eq!(live_sops(c, &clinical()).await, vec!["1.2.11.1.99.1", "1.2.11.1.1.2"]);
    let study = &c.query_studies(&query(Level::Study, vec![]), &clinical()).await.unwrap()[0];
    assert_eq!((study.number_of_series, study.number_of_instances), (2, 2), "the counters skip the rejected instance");
    let series = c.query_series(&query(Level::Series, vec![filter(Key::SeriesUid, single(SERIES))]), &clinical()).await.unwrap();
    assert_eq!(series[0].number_of_instances, 1);
    let patient = &c.query_patients(&query(Level::Patient, vec![]), &clinical()).await.unwrap()[0];
    assert_eq!(patient.number_of_instances, 2);
    assert_eq!(c.count_instances().await.unwrap(), 2);
    let by_uid =
        c.query_instances(&query(Level::Instance, vec![filter(Key::SopInstanceUid, single("1.2.11.1.1.1"))]), &clinical()).await.unwrap();
    assert!(by_uid.is_empty(), "a query by its UID does not find it either");

    // Still there for administrators and the archive's own work, with why.
    let seen = c.current_instance(a_uid, &Visibility::ALL).await.unwrap().expect("the archive sees it");
    let why = seen.rejection.expect("marked rejected");
    assert_eq!(why.code, "113001");
    assert!(why.at_ms > 0);
    assert_eq!(live_sops(c, &Visibility::ALL).await.len(), 3);
    let listed = c.rejections(&Visibility::ALL, 100, 0).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].sop_uid.as_str(), listed[0].code.as_str(), listed[0].note_sop_uid.as_str(), listed[0].received),
        ("1.2.11.1.1.1", "113001", "1.2.11.1.99.1", true)
    );

    // The change feed says so, naming the hidden version, after the note's own store.
    let changes = c.changes_since(feed_before, 100).await.unwrap();
    let kinds: Vec<(ChangeKind, &str)> = changes.iter().map(|ch| (ch.kind.clone(), ch.sop_uid.as_str())).collect();
    assert_eq!(kinds, vec![(ChangeKind::InstanceStored, "1.2.11.1.99.1"), (ChangeKind::InstanceRejected, "1.2.11.1.1.1")]);
    assert_eq!(changes[1].series_uid, SERIES);

    // A second note naming it again changes nothing: the first rejection is the one kept.
    let again = note(STUDY, "1.2.11.1.99.2", "113039", vec![reference(STUDY, SERIES, "1.2.11.1.1.1")]);
    store(c, &again).await;
    assert_eq!(c.current_instance(a_uid, &Visibility::ALL).await.unwrap().unwrap().rejection.unwrap().code, "113001");
    assert_eq!(c.rejections(&Visibility::ALL, 100, 0).await.unwrap().len(), 1);
    assert_counts_true(c).await;
}

pub async fn rejection_waits_for_unknown_instances(c: &dyn Catalog) {
    let n = note(STUDY, "1.2.11.1.99.1", "113037", vec![reference(STUDY, SERIES, "1.2.11.1.1.7")]);
    store(c, &n).await;
    let listed = c.rejections(&Visibility::ALL, 100, 0).await.unwrap();
    assert_eq!((listed.len(), listed[0].received), (1, false));

    // It arrives later: stored (acknowledged, nothing lost) and hidden from the first moment.
    let late = new_instance(STUDY, SERIES, "1.2.11.1.1.7");
    let outcome = c.register(&late, VersionPolicy::Reject).await.unwrap();
    let RegisterOutcome::Stored { instance, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(instance.rejection.as_ref().map(|r| r.code.as_str()), Some("113037"));
    assert!(c.current_instance(&late.instance.sop_uid, &clinical()).await.unwrap().is_none());
    assert_eq!(live_sops(c, &clinical()).await, vec!["1.2.11.1.99.1"]);
    assert!(c.rejections(&Visibility::ALL, 100, 0).await.unwrap()[0].received);

    // A new version of it is hidden too.
    let v2 = new_bytes(late.clone(), "second");
    assert!(matches!(c.register(&v2, VersionPolicy::Replace).await.unwrap(), RegisterOutcome::Stored { .. }));
    assert!(c.current_instance(&late.instance.sop_uid, &clinical()).await.unwrap().is_none());
    assert_eq!(c.instance_versions(&late.instance.sop_uid, &Visibility::ALL).await.unwrap().len(), 2);

    // The same UID in another study is not what the note named.
    let elsewhere = new_instance("1.2.11.2", "1.2.11.2.1", "1.2.11.2.1.1");
    store(c, &elsewhere).await;
    let named = note(STUDY, "1.2.11.1.99.3", "113001", vec![reference(STUDY, SERIES, "1.2.11.2.1.1")]);
    store(c, &named).await;
    assert!(c.current_instance(&elsewhere.instance.sop_uid, &clinical()).await.unwrap().is_some(), "wrong study: not hidden");
    assert_counts_true(c).await;
}

pub async fn rejection_stays_in_its_tenant(c: &dyn Catalog) {
    let mut theirs = new_instance(STUDY, SERIES, "1.2.11.1.1.1");
    theirs.tenant = "chuv".into();
    store(c, &theirs).await;
    // A note from another tenant naming their study and instance: stored, but it hides nothing
    // there (the note's study is its own; the study cannot straddle tenants).
    let mut forged = note("1.2.11.3", "1.2.11.3.99.1", "113001", vec![reference(STUDY, SERIES, "1.2.11.1.1.1")]);
    forged.tenant = "hug".into();
    store(c, &forged).await;
    assert!(c.current_instance(&theirs.instance.sop_uid, &clinical()).await.unwrap().is_some());
    // Nor when one of theirs arrives later under the same UID.
    let mut later = new_instance(STUDY, SERIES, "1.2.11.1.1.2");
    later.tenant = "chuv".into();
    let mut forged2 = note("1.2.11.3", "1.2.11.3.99.2", "113001", vec![reference(STUDY, SERIES, "1.2.11.1.1.2")]);
    forged2.tenant = "hug".into();
    store(c, &forged2).await;
    store(c, &later).await;
    assert!(c.current_instance(&later.instance.sop_uid, &clinical()).await.unwrap().is_some());

    // Administrators see the rejections of their own tenants only.
    let hug = Visibility { tenants: Some(vec!["hug".into()]), only: None, rejected: true };
    let chuv = Visibility { tenants: Some(vec!["chuv".into()]), only: None, rejected: true };
    assert_eq!(c.rejections(&hug, 100, 0).await.unwrap().len(), 2);
    assert!(c.rejections(&chuv, 100, 0).await.unwrap().is_empty());

    // Their own note does hide it.
    let mut own = note(STUDY, "1.2.11.1.99.1", "113038", vec![reference(STUDY, SERIES, "1.2.11.1.1.1")]);
    own.tenant = "chuv".into();
    store(c, &own).await;
    assert!(c.current_instance(&theirs.instance.sop_uid, &clinical()).await.unwrap().is_none());
    // Paging of the listing.
    let page: Vec<String> = c.rejections(&Visibility::ALL, 2, 1).await.unwrap().into_iter().map(|r| r.note_sop_uid).collect();
    assert_eq!(page, vec!["1.2.11.3.99.2", "1.2.11.1.99.1"]);
    assert_counts_true(c).await;
}

pub async fn a_study_wholly_rejected_disappears(c: &dyn Catalog) {
    let a = new_instance(STUDY, SERIES, "1.2.11.1.1.1");
    store(c, &a).await;
    // The note lives in a study of its own here, so the rejected study has nothing left.
    let n = note("1.2.11.5", "1.2.11.5.99.1", "113038", vec![reference(STUDY, SERIES, "1.2.11.1.1.1")]);
    store(c, &n).await;
    let studies: Vec<String> = c
        .query_studies(&query(Level::Study, vec![]), &clinical())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.study.study_uid.as_str().to_owned())
        .collect();
    assert_eq!(studies, vec!["1.2.11.5"]);
    assert!(c.query_series(&query(Level::Series, vec![filter(Key::StudyUid, single(STUDY))]), &clinical()).await.unwrap().is_empty());
    assert_eq!(study_uids(c, vec![]).await.len(), 2, "the archive's own view still has both");
    assert_counts_true(c).await;
}

/// Registrations arriving together share one transaction (on PostgreSQL what the catalog holds
/// for their SOP Instance UIDs is read once, at the start of it): each still sees what the
/// earlier ones of the batch wrote — a rejection note naming it, versions of its own UID.
pub async fn one_batch_sees_its_own_writes(c: std::sync::Arc<impl Catalog>) {
    let rejected = new_instance(STUDY, SERIES, "1.2.11.1.1.2");
    let n = note(STUDY, "1.2.11.1.99.1", "113001", vec![reference(STUDY, SERIES, "1.2.11.1.1.2")]);
    let after = new_instance(STUDY, SERIES, "1.2.11.1.1.3");
    let outcomes = together(&c, vec![n, rejected, after]).await;
    assert_eq!(outcomes, [(1, true, false), (1, true, true), (1, true, false)], "the rejected one hidden on arrival");
    let first = new_instance(STUDY, SERIES, "1.2.11.1.1.1");
    let second = new_bytes(first.clone(), "v2");
    let outcomes = together(&c, vec![first.clone(), second, first]).await;
    assert_eq!(outcomes, [(1, true, false), (2, false, false), (1, true, false)], "stored, prior version, duplicate");
    let mut live = live_sops(&*c, &clinical()).await;
    live.sort();
    assert_eq!(live, ["1.2.11.1.1.1", "1.2.11.1.1.3", "1.2.11.1.99.1"]);
    assert_counts_true(&*c).await;
}

/// Registers `news` at once (on one thread: queued before the writer runs, one batch), with
/// `KeepBoth`; the version, currency and rejection of each outcome's instance, in order.
async fn together(c: &std::sync::Arc<impl Catalog>, news: Vec<NewInstance>) -> Vec<(i32, bool, bool)> {
    let tasks: Vec<_> = news
        .into_iter()
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move { c.register(&n, VersionPolicy::KeepBoth).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(match t.await.unwrap() {
            RegisterOutcome::Stored { instance: i, .. } | RegisterOutcome::StoredAsPriorVersion { instance: i, .. } => {
                (i.version, i.is_current, i.rejection.is_some())
            }
            RegisterOutcome::Duplicate { existing: i } => (i.version, i.is_current, i.rejection.is_some()),
            other => panic!("unexpected {other:?}"),
        });
    }
    outcomes
}
