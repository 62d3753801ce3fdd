//! Lifecycle jobs in one process, on the SQLite catalog and the filesystem tier (emulated
//! locks): the apply job locks what the policies retain (capped by the lock horizon, then left
//! alone), gives its job back when the node stops and resumes it from its cursor, is taken over
//! when its owner's lease lapses, and never runs once cancelled. Time is passed in, nothing
//! sleeps for an outcome.

use std::sync::Arc;
use std::time::Duration;
use vna_archive::jobs::Worker;
use vna_archive::{Archive, ArchiveConfig};
use vna_catalog::JobState;
use vna_e2e::fixtures::Ct;
use vna_e2e::http;
use vna_e2e::inproc::{self, FaultyFixture};

/// Every instance retained ten years after ingest, GOVERNANCE.
const POLICY: &str = r#"
version = 1

[[rules]]
name = "ten-years"
[rules.retain]
mode = "GOVERNANCE"
at_least = [{ duration = "10y", after = "ingest" }]
"#;

struct World {
    fx: FaultyFixture,
    archive: Arc<Archive>,
    _server: inproc::InProcess,
    _policies: tempfile::TempDir,
    hash: String,
}

/// An archive with no policies stores `n` instances (unlocked); then one with the policy (and
/// `horizon`) over the same catalog and store is what the jobs run on.
async fn world(n: usize, horizon: Option<Duration>) -> World {
    let fx = FaultyFixture::new().await;
    let plain = fx.archive(fx.sqlite.clone(), ArchiveConfig::default());
    let server = inproc::serve(plain).await;
    let first = Ct::new_study();
    let mut objects = vec![first.to_bytes()];
    let mut ct = first;
    for _ in 1..n {
        ct = ct.next_instance();
        objects.push(ct.to_bytes());
    }
    let r = http::stow(&http::client(), &server.base, &objects).await;
    assert_eq!(r.status().as_u16(), 200);
    let (dir, set) = policies(POLICY);
    let hash = set.hash.clone();
    let config = ArchiveConfig { policies: Some(Arc::new(set)), lock_horizon: horizon, ..ArchiveConfig::default() };
    let archive = fx.archive(fx.sqlite.clone(), config);
    World { fx, archive, _server: server, _policies: dir, hash }
}

/// A policy set of one file with `text`; the folder lives as long as the guard.
fn policies(text: &str) -> (tempfile::TempDir, vna_lifecycle::PolicySet) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("policy.toml"), text).expect("policy file");
    let set = vna_lifecycle::load_dir(dir.path()).expect("policies load");
    (dir, set)
}

fn worker(name: &str) -> Worker {
    Worker { owner: name.into(), lease: Duration::from_secs(60), poll: Duration::from_millis(10) }
}

async fn queue(w: &World) -> i64 {
    let params = vna_archive::apply_params(vna_archive::now_ms(), &w.hash, vna_archive::Pace::default(), None);
    w.archive.enqueue_job(&vna_archive::apply_kind(&w.hash), &params, 0).await.expect("queued")
}

async fn outcome(w: &World, id: i64) -> serde_json::Value {
    let job = w.archive.catalog().job(id).await.expect("job").expect("exists");
    assert_eq!(job.state, JobState::Done, "{job:?}");
    serde_json::from_str(job.outcome.as_deref().expect("outcome")).expect("JSON")
}

/// The retain-until of every object version in the store, in days from now.
async fn lock_days(w: &World) -> Vec<i64> {
    let me = vna_archive::Principal::system();
    let rows = w.archive.all_instances_after(&me, 0, 100).await.expect("instances");
    let mut days = Vec::new();
    for row in &rows {
        let (_, p, _) = w.archive.protection(&me, &row.instance.sop_uid).await.expect("protection");
        let until = p.retention.expect("locked").retain_until;
        let left = until.duration_since(std::time::SystemTime::now()).expect("in the future");
        days.push((left.as_secs() / 86_400) as i64);
    }
    days
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_locks_what_the_policies_retain_and_then_leaves_it() {
    let w = world(3, None).await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let id = queue(&w).await;
    assert_eq!(w.archive.run_one_job(&worker("a"), &stop).await.expect("ran"), Some((id, JobState::Done)));
    let o = outcome(&w, id).await;
    assert_eq!((o["examined"].as_u64(), o["locks"]["extended"].as_u64()), (Some(3), Some(3)), "{o}");
    assert!(lock_days(&w).await.iter().all(|d| (3650..=3654).contains(d)), "ten years");
    // The extensions are audited: one event for the page, naming its study.
    let extensions = || async {
        let all = w.archive.catalog().audit_events(&vna_catalog::AuditQuery { limit: 1000, ..Default::default() }).await.expect("audit");
        all.into_iter().filter(|r| r.event.detail.starts_with("retention extended")).map(|r| r.event).collect::<Vec<_>>()
    };
    let events = extensions().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].event_id.as_str(), events[0].action.as_str(), events[0].studies.len()), ("110103", "U", 1));
    assert!(events[0].detail.contains(&w.hash) && events[0].detail.contains(&format!("job {id}")), "{}", events[0].detail);

    let again = queue(&w).await;
    w.archive.run_one_job(&worker("a"), &stop).await.expect("ran");
    let o = outcome(&w, again).await;
    assert_eq!((o["locks"]["extended"].as_u64(), o["locks"]["unchanged"].as_u64()), (Some(0), Some(3)), "{o}");
    assert_eq!(extensions().await.len(), 1, "nothing extended, nothing more audited");
    drop(w.fx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_horizon_locks_end_within_it_and_are_extended_when_half_is_left() {
    let w = world(2, Some(Duration::from_secs(30 * 86_400))).await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    // Locked a day ahead (an earlier horizon run, about to lapse): less than half is left.
    let me = vna_archive::Principal::system();
    for row in w.archive.all_instances_after(&me, 0, 100).await.expect("instances") {
        let until = std::time::SystemTime::now() + Duration::from_secs(86_400);
        let r = vna_blob::Retention { mode: vna_blob::LockMode::Governance, retain_until: until };
        w.fx.store.set_retention(vna_blob::BlobRef::new(&row.blob.key, row.blob.version_id.as_deref()), r).await.expect("lock");
    }
    assert_eq!(lock_days(&w).await, vec![0, 0]);
    let id = queue(&w).await;
    w.archive.run_one_job(&worker("a"), &stop).await.expect("ran");
    assert_eq!(outcome(&w, id).await["locks"]["extended"].as_u64(), Some(2));
    assert!(lock_days(&w).await.iter().all(|d| (29..=30).contains(d)), "thirty days, not ten years");
    // More than half the horizon left: nothing to do.
    let id = queue(&w).await;
    w.archive.run_one_job(&worker("a"), &stop).await.expect("ran");
    assert_eq!(outcome(&w, id).await["locks"]["unchanged"].as_u64(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_run_is_queued_once_a_period_and_retries_what_failed() {
    use std::sync::atomic::Ordering;
    let w = world(3, None).await;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let hour = Duration::from_secs(3600);
    let t = 1_000 * 3_600_000 + 60_000; // a minute into period 1000
    let first = w.archive.offer_scheduled_apply(hour, t, vna_archive::Pace::default()).await.expect("offered").expect("queued");
    assert_eq!(first.len(), 1);
    // Another node over the same catalog, or this one a minute later: the period's run exists.
    let other = w.fx.archive(w.fx.sqlite.clone(), w.archive.config().clone());
    assert!(other.offer_scheduled_apply(hour, t, vna_archive::Pace::default()).await.expect("offered").is_none());
    assert!(w.archive.offer_scheduled_apply(hour, t + 60_000, vna_archive::Pace::default()).await.expect("offered").is_none());

    // The store refuses every lock: the run goes through, every object failed with its reason.
    w.fx.faults.fail_lock.store(true, Ordering::SeqCst);
    assert_eq!(w.archive.run_one_job(&worker("a"), &stop).await.expect("ran"), Some((first[0], JobState::Done)));
    let job = w.archive.catalog().job(first[0]).await.expect("job").expect("exists");
    assert_eq!(job.progress.failed, 3, "{job:?}");
    let failures = w.archive.catalog().job_failures(first[0], 10, 0).await.expect("failures");
    assert!(failures.iter().all(|f| f.reason.contains("injected")), "{failures:?}");
    // The next period's run, by either node, retries them.
    w.fx.faults.fail_lock.store(false, Ordering::SeqCst);
    let second =
        other.offer_scheduled_apply(hour, t + 3_600_000, vna_archive::Pace::default()).await.expect("offered").expect("next period");
    assert!(w.archive.offer_scheduled_apply(hour, t + 3_600_000, vna_archive::Pace::default()).await.expect("offered").is_none());
    w.archive.run_one_job(&worker("a"), &stop).await.expect("ran");
    let o = outcome(&w, second[0]).await;
    assert_eq!(o["locks"]["extended"].as_u64(), Some(3), "{o}");
    assert!(lock_days(&w).await.iter().all(|d| (3650..=3654).contains(d)), "ten years");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_gives_its_job_back_and_another_finishes_it() {
    let w = world(2, None).await;
    let id = queue(&w).await;
    // The node is told to stop before the job's first step: the job goes back to the queue.
    let (_tx, stopped) = tokio::sync::watch::channel(true);
    assert_eq!(w.archive.run_one_job(&worker("a"), &stopped).await.expect("ran"), Some((id, JobState::Queued)));
    let job = w.archive.catalog().job(id).await.expect("job").expect("exists");
    assert_eq!((job.state, job.lease_owner.as_deref(), job.attempts), (JobState::Queued, None, 1));
    let (_tx, go) = tokio::sync::watch::channel(false);
    assert_eq!(w.archive.run_one_job(&worker("b"), &go).await.expect("ran"), Some((id, JobState::Done)));
    let job = w.archive.catalog().job(id).await.expect("job").expect("exists");
    assert_eq!(job.attempts, 2);
    assert_eq!(outcome(&w, id).await["locks"]["extended"].as_u64(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_s_job_is_taken_over_when_its_lease_lapses() {
    let w = world(2, None).await;
    let id = queue(&w).await;
    // Node a claims it with a lease that has already lapsed, and dies.
    let kinds = w.archive.job_kinds();
    let claimed = w.archive.catalog().claim_job("a", &kinds, vna_archive::now_ms() - 120_000, 1_000).await.expect("claim");
    assert_eq!(claimed.map(|j| j.id), Some(id));
    let (_tx, go) = tokio::sync::watch::channel(false);
    assert_eq!(w.archive.run_one_job(&worker("b"), &go).await.expect("ran"), Some((id, JobState::Done)));
    let job = w.archive.catalog().job(id).await.expect("job").expect("exists");
    assert_eq!(job.attempts, 2);
    // Node a comes back: the job is not its to end.
    let p = vna_catalog::Progress::default();
    assert!(!w.archive.catalog().finish_job(id, "a", JobState::Failed, "late", &p, vna_archive::now_ms()).await.expect("finish"));
    assert_eq!(w.archive.catalog().job(id).await.expect("job").expect("exists").state, JobState::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_never_runs_and_other_policies_never_take_it() {
    let w = world(1, None).await;
    let id = queue(&w).await;
    assert_eq!(w.archive.catalog().cancel_job(id, vna_archive::now_ms()).await.expect("cancel"), Some(JobState::Cancelled));
    let (_tx, go) = tokio::sync::watch::channel(false);
    assert_eq!(w.archive.run_one_job(&worker("a"), &go).await.expect("ran"), None);
    // A job queued for another policy set waits for a node that has it.
    let other = vna_archive::apply_params(vna_archive::now_ms(), "another-set", vna_archive::Pace::default(), None);
    w.archive.enqueue_job(&vna_archive::apply_kind("another-set"), &other, 0).await.expect("queued");
    assert_eq!(w.archive.run_one_job(&worker("a"), &go).await.expect("ran"), None);
}

/// Everything moves to `cold` a second after it arrives; retained ten years.
const MOVE_POLICY: &str = r#"
version = 1

[[rules]]
name = "cold-at-once"
[rules.retain]
mode = "GOVERNANCE"
at_least = [{ duration = "10y", after = "ingest" }]
[rules.transition]
tier = "cold"
after = "1s"
priority = 1
"#;

/// An archive on `fx`'s store with a `cold` filesystem tier and [`MOVE_POLICY`], whose hot lock
/// ends at the move date itself (no margin): a second after arrival. The cold tier, the policy
/// set's hash, and the directories to keep while the test runs.
async fn moving_archive(
    fx: &FaultyFixture,
) -> (Arc<Archive>, Arc<dyn vna_blob::BlobStore>, String, (tempfile::TempDir, tempfile::TempDir)) {
    let cold_dir = tempfile::tempdir().expect("temp dir");
    let cold: Arc<dyn vna_blob::BlobStore> = Arc::new(vna_blob::fs::FsBlobStore::open(cold_dir.path()).await.expect("cold tier"));
    let (policy_dir, set) = policies(MOVE_POLICY);
    let hash = set.hash.clone();
    let config = ArchiveConfig { policies: Some(Arc::new(set)), hot_margin: Duration::ZERO, ..ArchiveConfig::default() };
    let mut tiers = std::collections::HashMap::new();
    tiers.insert("default".to_owned(), fx.store.clone());
    tiers.insert("cold".to_owned(), cold.clone());
    let archive = Archive::new(fx.sqlite.clone(), tiers, config).expect("archive");
    (archive, cold, hash, (cold_dir, policy_dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_object_s_old_copy_is_destroyed_once_its_own_lock_lapses() {
    let fx = FaultyFixture::new().await;
    let (archive, cold, hash, _dirs) = moving_archive(&fx).await;
    let server = inproc::serve(archive.clone()).await;
    let ct = Ct::new_study();
    let bytes = ct.to_bytes();
    assert_eq!(http::stow(&http::client(), &server.base, std::slice::from_ref(&bytes)).await.status().as_u16(), 200);
    let me = vna_archive::Principal::system();
    let sop = vna_dicom::uid::SopInstanceUid::new(&ct.sop_uid).expect("uid");
    let (hot, p, _) = archive.protection(&me, &sop).await.expect("protection");
    assert!(p.retention.is_some_and(|r| r.retain_until < std::time::SystemTime::now() + Duration::from_secs(5)), "hot period only");

    let run = |grace: u64| {
        let archive = archive.clone();
        let hash = hash.clone();
        async move {
            // Moves paced at 1 MB/s: the job rests after each copy as long as its bytes take.
            let pace = vna_archive::Pace { megabytes_per_second: Some(1), ..vna_archive::Pace::default() };
            let params = vna_archive::apply_params(vna_archive::now_ms() + 86_400_000, &hash, pace, Some(grace));
            let id = archive.enqueue_job(&vna_archive::apply_kind(&hash), &params, 0).await.expect("queued");
            let (_tx, go) = tokio::sync::watch::channel(false);
            assert_eq!(archive.run_one_job(&worker("a"), &go).await.expect("ran"), Some((id, JobState::Done)));
            let job = archive.catalog().job(id).await.expect("job").expect("exists");
            serde_json::from_str::<serde_json::Value>(job.outcome.as_deref().expect("outcome")).expect("JSON")
        }
    };
    let first = run(3600).await;
    assert_eq!((first["moved"].as_u64(), first["purged"].as_u64()), (Some(1), Some(0)), "{first}");
    assert_eq!(first["bytesMoved"].as_u64(), Some(bytes.len() as u64), "{first}");
    let (moved, p, _) = archive.protection(&me, &sop).await.expect("protection");
    assert_eq!(moved.blob.tier, "cold");
    let ten_years = std::time::SystemTime::now() + Duration::from_secs(3650 * 86_400);
    assert!(p.retention.is_some_and(|r| r.retain_until >= ten_years), "locked for its retention on the cold tier");
    assert_eq!(vna_blob::read_all(&*cold, vna_blob::BlobRef::new(&moved.blob.key, None), None).await.expect("cold copy"), bytes);
    // Within the grace period the old copy stays; after it, it goes once its lock has lapsed.
    let hot_ref = vna_blob::BlobRef::new(&hot.blob.key, hot.blob.version_id.as_deref());
    assert!(fx.store.size(hot_ref).await.is_ok());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fx.store.protection(hot_ref).await.expect("hot protection").forbids_delete(std::time::SystemTime::now()) {
        assert!(std::time::Instant::now() < deadline, "the hot lock should lapse a second after arrival");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = run(0).await;
    assert_eq!((second["moved"].as_u64(), second["purged"].as_u64()), (Some(0), Some(1)), "{second}");
    assert!(matches!(fx.store.size(hot_ref).await, Err(vna_blob::BlobError::NotFound { .. })), "the hot copy is gone");
    let got = http::client()
        .get(format!("{}/studies/{}/series/{}/instances/{}", server.base, ct.study_uid, ct.series_uid, ct.sop_uid))
        .header("Accept", "multipart/related; type=\"application/dicom\"; transfer-syntax=*")
        .send()
        .await
        .expect("retrieve");
    assert_eq!(got.status().as_u16(), 200);
}

/// Cold after ten days without a read.
const UNUSED_POLICY: &str = r#"
version = 1

[[rules]]
name = "cold-when-unused"
[rules.transition]
tier = "cold"
unused_for = "10d"
priority = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_recorded_in_batches_and_count_for_unused_for() {
    let fx = FaultyFixture::new().await;
    let (_dir, set) = policies(UNUSED_POLICY);
    let archive = fx.archive(fx.sqlite.clone(), ArchiveConfig { policies: Some(Arc::new(set)), ..ArchiveConfig::default() });
    let server = inproc::serve(archive.clone()).await;
    let ct = Ct::new_study();
    assert_eq!(http::stow(&http::client(), &server.base, &[ct.to_bytes()]).await.status().as_u16(), 200);
    let me = vna_archive::Principal::system();
    let sop = vna_dicom::uid::SopInstanceUid::new(&ct.sop_uid).expect("uid");
    let row = |archive: Arc<Archive>| {
        let sop = sop.clone();
        let me = me.clone();
        async move { archive.protection(&me, &sop).await.expect("protection").0 }
    };
    let stored = row(archive.clone()).await;
    assert_eq!(stored.last_access_ms, None);
    let now = vna_archive::now_ms();
    let d = archive.policy_decision(&stored, now).await.expect("decision").expect("policies");
    assert_eq!(d.transition.and_then(|m| m.at), Some(stored.stored_at_ms + 10 * 86_400_000), "never read: counted from arrival");

    // Frames read many times: one write at the next flush.
    let url = format!("{}/studies/{}/series/{}/instances/{}/frames/1", server.base, ct.study_uid, ct.series_uid, ct.sop_uid);
    for _ in 0..5 {
        let r = http::client().get(&url).header("Accept", "multipart/related; type=\"application/octet-stream\"").send().await;
        assert_eq!(r.expect("frames").status().as_u16(), 200);
    }
    assert_eq!(archive.flush_accesses().await.expect("flush"), 1);
    assert_eq!(archive.flush_accesses().await.expect("flush"), 0, "nothing read since");
    let read = row(archive.clone()).await;
    let at = read.last_access_ms.expect("recorded");
    assert!(at >= now);
    let d = archive.policy_decision(&read, vna_archive::now_ms()).await.expect("decision").expect("policies");
    assert_eq!(d.transition.and_then(|m| m.at), Some(at + 10 * 86_400_000), "counted from the last read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_job_pages_through_its_match_and_resumes_where_it_was_given_back() {
    let w = world(1_001, None).await;
    let admin = vna_archive::Principal::system();
    let terms = [(vna_dicom::tags::MODALITY, "CT".to_owned())];
    let id = w.archive.queue_legal_hold(&admin, &terms, true).await.expect("queued");
    // The node is stopping: the job gives itself back after its first page (500 instances).
    let (stop_tx, stop) = tokio::sync::watch::channel(true);
    assert_eq!(w.archive.run_one_job(&worker("a"), &stop).await.expect("ran"), Some((id, JobState::Queued)));
    let job = w.archive.catalog().job(id).await.expect("job").expect("exists");
    assert_eq!(job.progress.done, 500, "{job:?}");
    drop(stop_tx);
    let (_go_tx, go) = tokio::sync::watch::channel(false);
    assert_eq!(w.archive.run_one_job(&worker("b"), &go).await.expect("ran"), Some((id, JobState::Done)));
    let o = outcome(&w, id).await;
    assert_eq!((o["changed"].as_u64(), o["changedByThisRun"].as_u64(), o["failed"].as_u64()), (Some(1_001), Some(501), Some(0)), "{o}");
    let rows = w.archive.all_instances_after(&admin, 0, 2_000).await.expect("instances");
    assert_eq!(rows.len(), 1_001);
    for row in [&rows[0], &rows[499], &rows[500], &rows[1_000]] {
        let (_, p, _) = w.archive.protection(&admin, &row.instance.sop_uid).await.expect("protection");
        assert!(p.legal_hold, "page boundaries included");
    }
    // A query that is not one: refused before anything is queued.
    let universal = [(vna_dicom::tags::MODALITY, "*".to_owned())];
    assert!(matches!(w.archive.queue_legal_hold(&admin, &universal, true).await, Err(vna_archive::ArchiveError::BadQuery { .. })));
    assert!(matches!(w.archive.queue_legal_hold(&admin, &[], true).await, Err(vna_archive::ArchiveError::BadQuery { .. })));
}

/// Everything goes a day after it arrived.
const EXPIRE_POLICY: &str = r#"
version = 1

[[rules]]
name = "one-day"
expire = true
[rules.retain]
mode = "GOVERNANCE"
at_least = [{ duration = "1d", after = "ingest" }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_refuses_an_instance_whose_hold_the_catalog_records() {
    let fx = FaultyFixture::new().await;
    let server = inproc::serve(fx.archive(fx.sqlite.clone(), ArchiveConfig::default())).await;
    let first = Ct::new_study();
    let second = first.next_instance();
    let r = http::stow(&http::client(), &server.base, &[first.to_bytes(), second.to_bytes()]).await;
    assert_eq!(r.status().as_u16(), 200);
    let (_dir, set) = policies(EXPIRE_POLICY);
    let hash = set.hash.clone();
    let archive = fx.archive(fx.sqlite.clone(), ArchiveConfig { policies: Some(Arc::new(set)), ..ArchiveConfig::default() });
    let me = vna_archive::Principal::system();
    let rows = archive.all_instances_after(&me, 0, 10).await.expect("instances");
    let held = rows.iter().find(|r| r.instance.sop_uid.as_str() == first.sop_uid).expect("first");
    // A hold placed in the instant between an expiry's look at the store and its catalog
    // commit: recorded in the catalog, not in the store yet.
    assert!(archive.catalog().mark_legal_hold(held.pk, true).await.expect("marked"));
    let params = vna_archive::apply_params(vna_archive::now_ms() + 2 * 86_400_000, &hash, vna_archive::Pace::default(), None);
    let id = archive.enqueue_job(&vna_archive::apply_kind(&hash), &params, 0).await.expect("queued");
    let (_tx, go) = tokio::sync::watch::channel(false);
    assert_eq!(archive.run_one_job(&worker("a"), &go).await.expect("ran"), Some((id, JobState::Done)));
    let job = archive.catalog().job(id).await.expect("job").expect("exists");
    let o: serde_json::Value = serde_json::from_str(job.outcome.as_deref().expect("outcome")).expect("JSON");
    assert_eq!((o["expired"].as_u64(), o["waitingForLock"].as_u64()), (Some(1), Some(1)), "{o}");
    let failures = archive.catalog().job_failures(id, 10, 0).await.expect("failures");
    assert!(failures.len() == 1 && failures[0].reason.contains("legal hold is recorded"), "{failures:?}");
    let left = archive.all_instances_after(&me, 0, 10).await.expect("instances");
    assert_eq!(left.iter().map(|r| r.instance.sop_uid.as_str()).collect::<Vec<_>>(), vec![first.sop_uid.as_str()]);
    // The hold placed and lifted through the archive clears the record: the next run expires it.
    let sop = vna_dicom::uid::SopInstanceUid::new(&first.sop_uid).expect("uid");
    let admin = vna_archive::Principal::new("admin", vna_archive::PrincipalKind::User, [vna_archive::Permission::Admin], None);
    archive.set_legal_hold(&admin, &sop, true).await.expect("held");
    archive.set_legal_hold(&admin, &sop, false).await.expect("lifted");
    let id = archive.enqueue_job(&vna_archive::apply_kind(&hash), &params, 0).await.expect("queued");
    assert_eq!(archive.run_one_job(&worker("a"), &go).await.expect("ran"), Some((id, JobState::Done)));
    assert!(archive.all_instances_after(&me, 0, 10).await.expect("instances").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_under_legal_hold_stays_on_its_tier_until_the_hold_is_lifted() {
    let fx = FaultyFixture::new().await;
    let (archive, _cold, hash, _dirs) = moving_archive(&fx).await;
    let server = inproc::serve(archive.clone()).await;
    let ct = Ct::new_study();
    assert_eq!(http::stow(&http::client(), &server.base, &[ct.to_bytes()]).await.status().as_u16(), 200);
    let sop = vna_dicom::uid::SopInstanceUid::new(&ct.sop_uid).expect("uid");
    let admin = vna_archive::Principal::new("admin", vna_archive::PrincipalKind::User, [vna_archive::Permission::Admin], None);
    archive.set_legal_hold(&admin, &sop, true).await.expect("held");
    let run = || async {
        let params = vna_archive::apply_params(vna_archive::now_ms() + 86_400_000, &hash, vna_archive::Pace::default(), Some(0));
        let id = archive.enqueue_job(&vna_archive::apply_kind(&hash), &params, 0).await.expect("queued");
        let (_tx, go) = tokio::sync::watch::channel(false);
        assert_eq!(archive.run_one_job(&worker("a"), &go).await.expect("ran"), Some((id, JobState::Done)));
        let job = archive.catalog().job(id).await.expect("job").expect("exists");
        let failures = archive.catalog().job_failures(id, 10, 0).await.expect("failures");
        (serde_json::from_str::<serde_json::Value>(job.outcome.as_deref().expect("outcome")).expect("JSON"), failures)
    };
    let (held, failures) = run().await;
    assert_eq!(held["moved"].as_u64(), Some(0), "{held}");
    assert!(failures.len() == 1 && failures[0].reason.contains("under legal hold"), "{failures:?}");
    let me = vna_archive::Principal::system();
    assert_eq!(archive.protection(&me, &sop).await.expect("protection").0.blob.tier, "default");
    archive.set_legal_hold(&admin, &sop, false).await.expect("lifted");
    let (lifted, _) = run().await;
    assert_eq!(lifted["moved"].as_u64(), Some(1), "{lifted}");
    assert_eq!(archive.protection(&me, &sop).await.expect("protection").0.blob.tier, "cold");
}
