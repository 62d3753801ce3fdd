//! Conformance cases for background jobs: claims by lease, at most one owner, takeover of a
//! lapsed lease from the last cursor, progress and failures, release, cancellation, listing.
//! Time is passed in: no case sleeps.

use super::*;
use crate::{JobFailure, JobQuery, JobState, NewJob, Progress};

const LEASE: i64 = 30_000;

fn kinds(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| (*s).to_owned()).collect()
}

async fn enqueue(c: &dyn Catalog, kind: &str, params: &str, now: i64, not_before: i64) -> i64 {
    c.enqueue_job(&NewJob { kind: kind.into(), params: params.into(), now_ms: now, not_before_ms: not_before }).await.unwrap()
}

fn at(cursor: &str, done: i64) -> Progress {
    Progress { cursor: Some(cursor.into()), done, failed: 0, total: Some(10), failures: Vec::new() }
}

pub async fn jobs_are_claimed_once_and_finished_by_their_owner(c: &dyn Catalog) {
    let first = enqueue(c, "apply", r#"{"n":1}"#, 1_000, 1_000).await;
    let second = enqueue(c, "apply", r#"{"n":2}"#, 1_001, 1_000).await;
    let later = enqueue(c, "apply", r#"{"n":3}"#, 1_002, 20_000).await;
    let other = enqueue(c, "reindex", "{}", 1_003, 1_000).await;

    let a = c.claim_job("node-a", &kinds(&["apply"]), 2_000, LEASE).await.unwrap().expect("a job");
    assert_eq!((a.id, a.state, a.attempts, a.params.as_str()), (first, JobState::Running, 1, r#"{"n":1}"#));
    assert_eq!((a.lease_owner.as_deref(), a.lease_until_ms, a.started_at_ms), (Some("node-a"), Some(2_000 + LEASE), Some(2_000)));
    let b = c.claim_job("node-b", &kinds(&["apply"]), 2_000, LEASE).await.unwrap().expect("the next one");
    assert_eq!(b.id, second);
    assert!(c.claim_job("node-c", &kinds(&["apply"]), 2_000, LEASE).await.unwrap().is_none(), "the third is not due yet");
    assert!(c.claim_job("node-c", &[], 2_000, LEASE).await.unwrap().is_none());
    let due = c.claim_job("node-c", &kinds(&["apply"]), 20_000, LEASE).await.unwrap().expect("due now");
    assert_eq!(due.id, later);
    assert_eq!(c.claim_job("node-c", &kinds(&["reindex", "apply"]), 20_000, LEASE).await.unwrap().map(|j| j.id), Some(other));

    // Only the owner renews and finishes; progress and failures are recorded.
    let mut p = at("pk:41", 4);
    p.failed = 1;
    p.failures = vec![JobFailure { object: "default/obj-1".into(), reason: "no such object on its tier".into(), at_ms: 2_500 }];
    let renewed = c.renew_job(first, "node-a", 2_500, LEASE, &p).await.unwrap();
    assert!(renewed.held && !renewed.cancel_requested);
    assert!(!c.renew_job(first, "node-b", 2_500, LEASE, &at("pk:99", 9)).await.unwrap().held, "not node-b's job");
    let row = c.job(first).await.unwrap().unwrap();
    assert_eq!((row.progress.cursor.as_deref(), row.progress.done, row.progress.failed), (Some("pk:41"), 4, 1));
    assert_eq!(row.lease_until_ms, Some(2_500 + LEASE));
    assert!(!c.finish_job(first, "node-b", JobState::Done, "{}", &at("pk:99", 9), 3_000).await.unwrap());
    assert!(c.finish_job(first, "node-a", JobState::Done, r#"{"expired":3}"#, &at("end", 10), 3_000).await.unwrap());
    assert!(!c.finish_job(first, "node-a", JobState::Done, "{}", &at("end", 10), 3_001).await.unwrap(), "finished once");
    let row = c.job(first).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.outcome.as_deref(), row.finished_at_ms, row.lease_owner),
        (JobState::Done, Some(r#"{"expired":3}"#), Some(3_000), None)
    );
    assert_eq!(row.progress.done, 10);
    let failures = c.job_failures(first, 10, 0).await.unwrap();
    assert_eq!(failures, p.failures);
    assert!(c.claim_job("node-d", &kinds(&["apply", "reindex"]), 20_001, LEASE).await.unwrap().is_none(), "nothing left");
    assert!(c.job(9_999_999).await.unwrap().is_none());
}

pub async fn a_lapsed_lease_is_taken_over_from_the_last_cursor(c: &dyn Catalog) {
    let id = enqueue(c, "apply", "{}", 0, 0).await;
    c.claim_job("node-a", &kinds(&["apply"]), 1_000, LEASE).await.unwrap().unwrap();
    assert!(c.renew_job(id, "node-a", 10_000, LEASE, &at("pk:500", 50)).await.unwrap().held);
    // node-a dies: its lease runs until 40 000.
    assert!(c.claim_job("node-b", &kinds(&["apply"]), 40_000, LEASE).await.unwrap().is_none(), "still leased");
    let taken = c.claim_job("node-b", &kinds(&["apply"]), 40_001, LEASE).await.unwrap().expect("lapsed: claimable");
    assert_eq!((taken.id, taken.attempts, taken.lease_owner.as_deref()), (id, 2, Some("node-b")));
    assert_eq!((taken.progress.cursor.as_deref(), taken.progress.done), (Some("pk:500"), 50), "resumes where node-a was");
    assert_eq!(taken.started_at_ms, Some(1_000), "first start kept");
    // node-a wakes up: it no longer holds the job, and cannot end it.
    assert!(!c.renew_job(id, "node-a", 40_002, LEASE, &at("pk:600", 60)).await.unwrap().held);
    assert!(!c.finish_job(id, "node-a", JobState::Done, "{}", &at("pk:600", 60), 40_003).await.unwrap());
    assert!(!c.release_job(id, "node-a", &at("pk:600", 60)).await.unwrap());
    assert_eq!(c.job(id).await.unwrap().unwrap().progress.cursor.as_deref(), Some("pk:500"));
    assert!(c.finish_job(id, "node-b", JobState::Failed, "store unreachable", &at("pk:700", 70), 41_000).await.unwrap());
    assert_eq!(c.job(id).await.unwrap().unwrap().state, JobState::Failed);
}

pub async fn jobs_are_released_and_cancelled(c: &dyn Catalog) {
    let queued = enqueue(c, "apply", "{}", 0, 0).await;
    assert_eq!(c.cancel_job(queued, 10).await.unwrap(), Some(JobState::Cancelled));
    assert!(c.claim_job("node-a", &kinds(&["apply"]), 100, LEASE).await.unwrap().is_none(), "a cancelled job is never claimed");

    let running = enqueue(c, "apply", "{}", 0, 0).await;
    c.claim_job("node-a", &kinds(&["apply"]), 100, LEASE).await.unwrap().unwrap();
    // Shutdown: node-a gives it back with its progress; node-b takes it at once.
    assert!(c.release_job(running, "node-a", &at("pk:5", 5)).await.unwrap());
    let again = c.claim_job("node-b", &kinds(&["apply"]), 200, LEASE).await.unwrap().expect("released: claimable");
    assert_eq!((again.id, again.progress.cursor.as_deref(), again.attempts), (running, Some("pk:5"), 2));
    // An administrator cancels it while it runs: the owner learns it on its next renewal.
    assert_eq!(c.cancel_job(running, 300).await.unwrap(), Some(JobState::Running));
    let r = c.renew_job(running, "node-b", 400, LEASE, &at("pk:6", 6)).await.unwrap();
    assert!(r.held && r.cancel_requested);
    assert!(c.finish_job(running, "node-b", JobState::Cancelled, "cancelled", &at("pk:6", 6), 500).await.unwrap());
    assert_eq!(c.cancel_job(running, 600).await.unwrap(), Some(JobState::Cancelled), "already over");
    assert_eq!(c.cancel_job(9_999_999, 600).await.unwrap(), None);

    // Listing: newest first, by state and kind, paged by id.
    let done = enqueue(c, "reindex", "{}", 0, 0).await;
    let all: Vec<i64> = c.jobs(&JobQuery { limit: 10, ..JobQuery::default() }).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(all, vec![done, running, queued]);
    let page: Vec<i64> =
        c.jobs(&JobQuery { limit: 1, before_id: Some(done), ..JobQuery::default() }).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(page, vec![running]);
    let q = JobQuery { state: Some(JobState::Queued), limit: 10, ..JobQuery::default() };
    assert_eq!(c.jobs(&q).await.unwrap().into_iter().map(|j| j.id).collect::<Vec<_>>(), vec![done]);
    let q = JobQuery { kind: Some("apply".into()), limit: 10, ..JobQuery::default() };
    assert_eq!(c.jobs(&q).await.unwrap().len(), 2);
}

/// Many claimers at once, as several nodes' schedulers: every job is claimed exactly once.
pub async fn concurrent_claims_take_each_job_once(c: std::sync::Arc<impl Catalog>) {
    let mut ids = Vec::new();
    for n in 0..24 {
        ids.push(enqueue(&*c, "apply", &format!("{{\"n\":{n}}}"), 0, 0).await);
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(j) = c.claim_job(&format!("node-{w}"), &["apply".to_owned()], 1_000, LEASE).await.unwrap() {
                mine.push(j.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    claimed.sort_unstable();
    assert_eq!(claimed, ids, "each job once, none left out");
}

fn run_of(kind: &str, n: usize, now: i64) -> Vec<NewJob> {
    (0..n).map(|i| NewJob { kind: kind.into(), params: format!("{{\"shard\":{i}}}"), now_ms: now, not_before_ms: now }).collect()
}

pub async fn a_schedule_queues_each_slot_once(c: &dyn Catalog) {
    let busy = kinds(&["apply:h1"]);
    let ids = c.enqueue_scheduled("lifecycle", 7, &busy, &run_of("apply:h1", 2, 1_000)).await.unwrap().expect("slot 7 queued");
    assert_eq!(ids.len(), 2, "every job of the run");
    // The same slot again (another node, the same period), or an earlier one (a clock behind):
    // nothing. A later slot while the run is still queued or running: nothing either.
    assert!(c.enqueue_scheduled("lifecycle", 7, &busy, &run_of("apply:h1", 2, 1_001)).await.unwrap().is_none());
    assert!(c.enqueue_scheduled("lifecycle", 6, &[], &run_of("apply:h1", 1, 1_001)).await.unwrap().is_none());
    assert!(c.enqueue_scheduled("lifecycle", 8, &busy, &run_of("apply:h1", 1, 1_002)).await.unwrap().is_none(), "run 7 goes on");
    // Another schedule has its own slots.
    assert!(c.enqueue_scheduled("other", 7, &[], &run_of("reindex", 1, 1_003)).await.unwrap().is_some());
    for id in &ids {
        let j = c.claim_job("node-a", &busy, 2_000, LEASE).await.unwrap().expect("a job of the run");
        assert_eq!(j.id, *id);
        assert!(c.finish_job(j.id, "node-a", JobState::Done, "{}", &at("end", 1), 2_001).await.unwrap());
    }
    let next = c.enqueue_scheduled("lifecycle", 8, &busy, &run_of("apply:h1", 1, 3_000)).await.unwrap().expect("run 7 ended: 8 goes");
    assert_eq!(next.len(), 1);
    let listed = c.jobs(&JobQuery { kind: Some("apply:h1".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed.len(), 3, "runs 7 (two jobs) and 8, nothing else");
}

pub async fn concurrent_schedulers_queue_one_run(c: std::sync::Arc<impl Catalog>) {
    let mut tasks = Vec::new();
    for w in 0..6 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.enqueue_scheduled("lifecycle", 42, &kinds(&["apply:h1"]), &run_of("apply:h1", 3, 1_000 + w)).await.unwrap()
        }));
    }
    let mut queued = Vec::new();
    for t in tasks {
        queued.extend(t.await.unwrap());
    }
    assert_eq!(queued.len(), 1, "one node queues the slot's run");
    let listed = c.jobs(&JobQuery { kind: Some("apply:h1".into()), limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed.len(), 3, "its three jobs and no other");
}

pub async fn expiry_leaves_tombstones_until_purged(c: &dyn Catalog) {
    use crate::{ChangeKind, Expiry, ExpiryOutcome};
    let a = new_instance("1.2.12.1", "1.2.12.1.1", "1.2.12.1.1.1");
    let mut b = new_instance("1.2.12.1", "1.2.12.1.1", "1.2.12.1.1.2");
    b.instance.instance_number = Some(2);
    store(c, &a).await;
    store(c, &b).await;
    let a2 = new_bytes(a.clone(), "a2");
    assert!(matches!(c.register(&a2, VersionPolicy::Replace).await.unwrap(), RegisterOutcome::Stored { .. }));

    // Keyset pages of current instances, in key order.
    let page = c.instances_after(0, 1, &Visibility::ALL).await.unwrap();
    assert_eq!(page.len(), 1);
    let rest = c.instances_after(page[0].pk, 10, &Visibility::ALL).await.unwrap();
    let order: Vec<&str> = page.iter().chain(&rest).map(|r| r.instance.sop_uid.as_str()).collect();
    assert_eq!(order, vec!["1.2.12.1.1.2", "1.2.12.1.1.1"], "b (pk 2) before a's second version (pk 3)");

    let versions: Vec<i64> = c.instance_versions(&a.instance.sop_uid, &Visibility::ALL).await.unwrap().iter().map(|r| r.pk).collect();
    assert_eq!(versions.len(), 2);
    // The versions of a page of instances in one query: each instance's, in version order.
    let sops = [b.instance.sop_uid.clone(), a.instance.sop_uid.clone()];
    let both = c.versions_of(&sops, &Visibility::ALL).await.unwrap();
    let got: Vec<(&str, i32)> = both.iter().map(|r| (r.instance.sop_uid.as_str(), r.version)).collect();
    assert_eq!(got, vec![("1.2.12.1.1.1", 1), ("1.2.12.1.1.1", 2), ("1.2.12.1.1.2", 1)]);
    assert!(c.versions_of(&[], &Visibility::ALL).await.unwrap().is_empty());
    let expiry = |pks: Vec<i64>| Expiry {
        sop_uid: a.instance.sop_uid.clone(),
        version_pks: pks,
        reason: "expired".into(),
        rules: vec!["rule-a".into(), "rule-b".into()],
        policy_set: "hash-1".into(),
        now_ms: 5_000,
        audit: None,
    };
    // A decision that saw only one version changes nothing.
    assert_eq!(c.expire_instance(&expiry(vec![versions[0]])).await.unwrap(), ExpiryOutcome::Changed);
    assert!(c.current_instance(&a.instance.sop_uid, &Visibility::ALL).await.unwrap().is_some());
    // Nor does one with a legal hold recorded on any version; lifted, it goes.
    assert!(c.mark_legal_hold(versions[0], true).await.unwrap());
    assert_eq!(c.expire_instance(&expiry(versions.clone())).await.unwrap(), ExpiryOutcome::Held);
    assert_eq!(c.instance_versions(&a.instance.sop_uid, &Visibility::ALL).await.unwrap().len(), 2);
    assert!(c.mark_legal_hold(versions[0], false).await.unwrap());

    let ExpiryOutcome::Expired(stones) = c.expire_instance(&expiry(versions.clone())).await.unwrap() else { panic!("expired") };
    assert_eq!(stones.iter().map(|t| t.version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(stones[0].blob.key, a.blob.key);
    assert_eq!(stones[1].blob.sha256, a2.blob.sha256);
    assert_eq!(
        (stones[0].reason.as_str(), stones[0].rules.clone(), stones[0].policy_set.as_str()),
        ("expired", vec!["rule-a".to_owned(), "rule-b".to_owned()], "hash-1")
    );
    assert!(stones.iter().all(|t| t.purged_at_ms.is_none() && t.at_ms == 5_000 && t.study_uid == "1.2.12.1"));
    // Gone from every read, for everyone; its study counts what is left.
    assert!(c.current_instance(&a.instance.sop_uid, &Visibility::ALL).await.unwrap().is_none());
    assert!(c.instance_versions(&a.instance.sop_uid, &Visibility::ALL).await.unwrap().is_empty());
    let study = &c.query_studies(&query(Level::Study, vec![]), &Visibility::ALL).await.unwrap()[0];
    assert_eq!(study.number_of_instances, 1);
    assert_eq!(c.expire_instance(&expiry(versions.clone())).await.unwrap(), ExpiryOutcome::Changed, "once");
    assert!(!c.mark_legal_hold(versions[0], true).await.unwrap(), "no row left to hold");
    let last = c.changes_since(0, 100).await.unwrap().pop().unwrap();
    assert_eq!((last.kind, last.sop_uid.as_str()), (ChangeKind::InstanceExpired, "1.2.12.1.1.1"));

    // The objects wait to be destroyed; each is marked once.
    let waiting = c.unpurged_tombstones(0, 10).await.unwrap();
    assert_eq!(waiting.len(), 2);
    assert!(c.mark_purged(waiting[0].pk, 6_000).await.unwrap());
    assert!(!c.mark_purged(waiting[0].pk, 6_001).await.unwrap());
    let waiting_now = c.unpurged_tombstones(0, 10).await.unwrap();
    assert_eq!(waiting_now.iter().map(|t| t.pk).collect::<Vec<_>>(), vec![waiting[1].pk]);
    assert!(c.unpurged_tombstones(waiting[1].pk, 10).await.unwrap().is_empty());
    let kept = c.tombstones(&a.instance.sop_uid, &Visibility::ALL).await.unwrap();
    assert_eq!(kept.iter().map(|t| t.purged_at_ms).collect::<Vec<_>>(), vec![Some(6_000), None]);
    let other = Visibility { tenants: Some(vec!["elsewhere".into()]), only: None, rejected: true };
    assert!(c.tombstones(&a.instance.sop_uid, &other).await.unwrap().is_empty());

    // It may come again: a new first version.
    store(c, &a).await;
    assert_eq!(c.current_instance(&a.instance.sop_uid, &Visibility::ALL).await.unwrap().unwrap().version, 1);
    assert_counts_true(c).await;
}

pub async fn a_tier_move_switches_the_version_and_leaves_the_old_object_to_purge(c: &dyn Catalog) {
    use crate::{BlobLocation, ChangeKind, TierMove};
    let a = new_instance("1.2.13.1", "1.2.13.1.1", "1.2.13.1.1.1");
    let pk = store(c, &a).await;
    let to = BlobLocation { tier: "cold".into(), key: "obj-cold-1".into(), version_id: Some("v9".into()), ..a.blob.clone() };
    let m = TierMove {
        pk,
        from: a.blob.clone(),
        to: to.clone(),
        rules: vec!["slides".into()],
        policy_set: "h".into(),
        now_ms: 7_000,
        audit: None,
    };
    let stone = c.move_version(&m).await.unwrap().expect("moved");
    assert_eq!((stone.reason.as_str(), stone.blob.clone(), stone.purged_at_ms), ("moved", a.blob.clone(), None));
    let now = c.current_instance(&a.instance.sop_uid, &Visibility::ALL).await.unwrap().unwrap();
    assert_eq!((now.pk, now.blob.clone()), (pk, to.clone()), "the same version, on its new tier");
    let last = c.changes_since(0, 100).await.unwrap().pop().unwrap();
    assert_eq!((last.kind, last.sop_uid.as_str()), (ChangeKind::InstanceMoved, "1.2.13.1.1.1"));
    assert_eq!(c.unpurged_tombstones(0, 10).await.unwrap().len(), 1);
    // The same move again finds it elsewhere: nothing changes.
    assert!(c.move_version(&m).await.unwrap().is_none());
    // A copy that is not the same object is refused.
    let bad = TierMove { from: to.clone(), to: BlobLocation { sha256: fake_sha("other"), ..to.clone() }, ..m.clone() };
    assert!(c.move_version(&bad).await.is_err());
    assert_eq!(c.current_instance(&a.instance.sop_uid, &Visibility::ALL).await.unwrap().unwrap().blob, to);
    assert_counts_true(c).await;
}

pub async fn accesses_are_recorded_in_batches_and_never_go_back(c: &dyn Catalog) {
    let a = new_instance("1.2.14.1", "1.2.14.1.1", "1.2.14.1.1.1");
    let mut b = new_instance("1.2.14.1", "1.2.14.1.1", "1.2.14.1.1.2");
    b.instance.instance_number = Some(2);
    let (pa, pb) = (store(c, &a).await, store(c, &b).await);
    let last = |sop: &vna_dicom::uid::SopInstanceUid| {
        let sop = sop.clone();
        async move { c.current_instance(&sop, &Visibility::ALL).await.unwrap().unwrap().last_access_ms }
    };
    assert_eq!(last(&a.instance.sop_uid).await, None, "not read since it arrived");
    assert_eq!(c.record_accesses(&[pa, pb], 1_000).await.unwrap(), 2);
    assert_eq!(last(&a.instance.sop_uid).await, Some(1_000));
    assert_eq!(c.record_accesses(&[pa], 500).await.unwrap(), 0, "an older batch does not go back in time");
    assert_eq!(c.record_accesses(&[pa], 2_000).await.unwrap(), 1);
    assert_eq!((last(&a.instance.sop_uid).await, last(&b.instance.sop_uid).await), (Some(2_000), Some(1_000)));
    assert_eq!(c.record_accesses(&[], 3_000).await.unwrap(), 0);
    let many: Vec<i64> = (0..1200).map(|n| pa + 10_000 + n).chain([pb]).collect();
    assert_eq!(c.record_accesses(&many, 3_000).await.unwrap(), 1, "chunks of a large batch, unknown keys skipped");
}
