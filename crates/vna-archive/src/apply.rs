//! The lifecycle apply job (`vna lifecycle apply`, `POST /admin/lifecycle/apply`): over one
//! range of instance keys, the policies' decisions carried out in the stores and the catalog —
//! retention locked, due tier moves made, expired instances removed with their tombstones —
//! each step idempotent, progress recorded through the job's [`crate::jobs::JobCtx`].

use crate::lifecycle::{lifecycle_facts, LockPlan};
use crate::{Archive, ArchiveError};
use vna_catalog::InstanceRow;
use vna_lifecycle::Decision;

/// The job that applies the lifecycle policies over the catalog (`vna lifecycle apply`).
/// Parameters: `now` (Unix ms: the clock the policies decide with; a plan made for a date is
/// applied for that date), `policySet` (the hash of the set the job was queued for: a node
/// whose configured set differs refuses it rather than apply other rules), and optionally
/// `maxPerSecond` (objects examined per second, so that patients' images keep priority).
///
/// It applies **retention**: every version of an instance the policies retain is locked in its
/// store until the policies' date (or the lock horizon), extended where shorter, never
/// shortened (a COMPLIANCE lock longer than the policies now ask is counted in the outcome).
/// And **expiry**: an instance whose decision has an `expire_at` that has
/// passed, no hold, and no rule left undetermined, and whose stored objects the store no longer
/// protects (retention ended, no legal hold), leaves the catalog with a tombstone per version
/// (`Catalog::expire_instance`), then each object version is destroyed by its version id and
/// its tombstone marked purged. One whose store still protects it is reported (failed, with
/// the lock's end) and left whole: the purge waits for the lock. And **tier moves** that are
/// due (`Archive::move_to`). Each expiry is audited (DICOM
/// Study Deleted, A.5.3.6). The job first purges what an earlier run left behind (a crash
/// between the catalog and the store), then walks the current instances by key.
pub const APPLY_JOB: &str = "lifecycle-apply";

/// The job kind of an apply job for the policy set with this hash: `lifecycle-apply:<hash>`.
pub fn apply_kind(policy_set: &str) -> String {
    format!("{APPLY_JOB}:{policy_set}")
}

/// Instances read per page of the walk.
const WALK_PAGE: u32 = 500;

/// Where an apply job is: purging leftovers after a tombstone key, or walking instances after
/// an instance key. Recorded as the job's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Purge(i64),
    Walk(i64),
}

impl Cursor {
    fn parse(s: Option<&str>) -> Cursor {
        let at = |p: &str| s.and_then(|s| s.strip_prefix(p)).and_then(|n| n.parse().ok());
        match (at("purge:"), at("walk:")) {
            (Some(n), _) => Cursor::Purge(n),
            (_, Some(n)) => Cursor::Walk(n),
            _ => Cursor::Purge(0),
        }
    }

    fn show(self) -> String {
        match self {
            Cursor::Purge(n) => format!("purge:{n}"),
            Cursor::Walk(n) => format!("walk:{n}"),
        }
    }
}

/// How fast an apply job may go, so that patients' images keep priority: objects examined per
/// second, and megabytes copied per second by tier moves (after each copy the job rests as long
/// as the copy's size takes at that rate, renewing its lease meanwhile). `None`: unpaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pace {
    pub objects_per_second: Option<u32>,
    pub megabytes_per_second: Option<u32>,
}

/// The parameters of an apply job.
/// `move_grace_seconds`: how long the old object of a move is kept ([`MOVE_GRACE_SECONDS`] by
/// default).
pub fn apply_params(now_ms: i64, policy_set: &str, pace: Pace, move_grace_seconds: Option<u64>) -> serde_json::Value {
    let grace = move_grace_seconds.unwrap_or(MOVE_GRACE_SECONDS);
    serde_json::json!({
        "now": now_ms,
        "policySet": policy_set,
        "maxPerSecond": pace.objects_per_second,
        "maxMegabytesPerSecond": pace.megabytes_per_second,
        "moveGraceSeconds": grace,
    })
}

/// The same job restricted to the instance keys in `(after, up_to]` (one shard of a run split
/// so that several nodes share it); `purge`: whether this shard also destroys what earlier runs
/// left behind (one shard of a run does).
pub fn shard_params(mut params: serde_json::Value, after: i64, up_to: i64, purge: bool) -> serde_json::Value {
    params["afterKey"] = after.into();
    params["upToKey"] = up_to.into();
    params["purge"] = purge.into();
    params
}

/// Instance keys per job of an apply run, by default: a run over a large catalog is split into
/// jobs that every node's runner may take.
pub const KEYS_PER_JOB: i64 = 50_000;

/// How long the object a tier move left behind is kept before it is destroyed: a read that
/// resolved the old location just before the switch (a slide streamed for minutes) finishes.
pub const MOVE_GRACE_SECONDS: u64 = 900;

#[derive(Default)]
struct Tally {
    examined: u64,
    expired: u64,
    purged: u64,
    waiting_for_lock: u64,
    /// Object versions copied to their new tier and switched in the catalog, and their bytes.
    moved: u64,
    bytes_moved: u64,
    /// Old objects of moves kept until their grace period ends (destroyed by a later run).
    awaiting_grace: u64,
    locks: Locks,
}

/// What the retention step did to object versions.
#[derive(Default)]
struct Locks {
    /// Locked or extended to what the policies give.
    extended: u64,
    /// Already locked at least as long as needed.
    unchanged: u64,
    /// Locked in COMPLIANCE mode longer than the policies now give: reported, never shortened.
    longer_than_policy: u64,
    /// On a tier that cannot lock.
    not_lockable: u64,
    /// Whose retention has already ended: nothing to lock.
    retention_over: u64,
}

/// An opaque name for an object version in job failures (no PHI: tier and key).
pub(crate) fn object_name(tier: &str, key: &str) -> String {
    format!("{tier}/{key}")
}

pub(crate) async fn apply_job(ctx: &mut crate::jobs::JobCtx) -> Result<serde_json::Value, crate::jobs::JobError> {
    use crate::jobs::JobError;
    let params: serde_json::Value =
        serde_json::from_str(&ctx.job().params).map_err(|_| JobError::Failed("the job's parameters are not JSON".into()))?;
    let now = params["now"].as_i64().ok_or_else(|| JobError::Failed("the job has no `now`".into()))?;
    let wanted = params["policySet"].as_str().unwrap_or_default().to_owned();
    let pace = params["maxPerSecond"].as_u64().filter(|n| *n > 0).map(|n| std::time::Duration::from_secs_f64(1.0 / n as f64));
    let grace = std::time::Duration::from_secs(params["moveGraceSeconds"].as_u64().unwrap_or(MOVE_GRACE_SECONDS));
    let bandwidth = params["maxMegabytesPerSecond"].as_u64().filter(|n| *n > 0).map(|n| n as f64 * 1e6);
    let archive = ctx.archive().clone();
    let Some(set) = archive.policies().cloned() else {
        return Err(JobError::Failed("no lifecycle policies are configured on this node".into()));
    };
    if set.hash != wanted {
        return Err(JobError::Failed(format!(
            "the policies changed since the job was queued (queued for {wanted}, this node has {})",
            set.hash
        )));
    }
    let me = crate::Principal::system();
    let mut tally = Tally::default();
    let (after_key, up_to) = (params["afterKey"].as_i64().unwrap_or(0), params["upToKey"].as_i64().unwrap_or(i64::MAX));
    let mut cursor = match ctx.job().progress.cursor.as_deref() {
        Some(c) => Cursor::parse(Some(c)),
        None if params["purge"].as_bool().unwrap_or(true) => Cursor::Purge(0),
        None => Cursor::Walk(after_key),
    };

    // Objects an earlier run expired from the catalog but could not destroy yet.
    while let Cursor::Purge(after) = cursor {
        let page = archive.catalog().unpurged_tombstones(after, WALK_PAGE).await.map_err(ArchiveError::catalog("listing tombstones"))?;
        let Some(last) = page.last().map(|t| t.pk) else {
            cursor = Cursor::Walk(after_key);
            break;
        };
        for t in &page {
            if t.reason == "moved" && crate::now_ms().saturating_sub(t.at_ms) < i64::try_from(grace.as_millis()).unwrap_or(i64::MAX) {
                tally.awaiting_grace += 1;
            } else if archive.purge(ctx, t).await? {
                tally.purged += 1;
            }
        }
        cursor = Cursor::Purge(last);
        ctx.progress.cursor = Some(cursor.show());
        ctx.checkpoint().await?;
    }
    ctx.progress.cursor = Some(cursor.show());

    let mut last_study: std::collections::HashMap<(String, String), Option<i64>> = std::collections::HashMap::new();
    while let Cursor::Walk(after) = cursor {
        let page = archive
            .catalog()
            .instances_after(after, WALK_PAGE, me.visibility())
            .await
            .map_err(ArchiveError::catalog("listing instances"))?;
        let Some(last) = page.last().map(|r| r.pk) else { break };
        // The instances whose locks this page extended: audited together, however the page ends.
        let mut extended: Vec<&InstanceRow> = Vec::new();
        // Every version of the page's instances, in one query (the retention step locks them all).
        let sops: Vec<_> = page.iter().take_while(|r| r.pk <= up_to).map(|r| r.instance.sop_uid.clone()).collect();
        let all = archive.catalog().versions_of(&sops, &vna_catalog::Visibility::ALL).await;
        let mut versions: std::collections::HashMap<String, Vec<InstanceRow>> = std::collections::HashMap::new();
        for v in all.map_err(ArchiveError::catalog("listing versions"))? {
            versions.entry(v.instance.sop_uid.to_string()).or_default().push(v);
        }
        let walked: Result<(), JobError> = async {
            for row in page.iter().take_while(|r| r.pk <= up_to) {
                // Before each object: a stopping node stops here, its cursor after the last one done.
                ctx.checkpoint().await?;
                if let Some(p) = pace {
                    tokio::time::sleep(p).await;
                }
                tally.examined += 1;
                let key = (row.patient.patient_id.clone(), row.patient.issuer_of_patient_id.clone());
                let last = match last_study.get(&key) {
                    Some(l) => *l,
                    None => {
                        let l = archive.patient_last_study(&row.patient).await?;
                        last_study.insert(key, l);
                        l
                    }
                };
                let d = set.decide(&lifecycle_facts(row, last), now);
                if d.expire_due(now) {
                    match archive.expire(ctx, row, &d, &set.hash).await? {
                        Expired::Done(purged) => {
                            tally.expired += 1;
                            tally.purged += purged;
                        }
                        Expired::Locked => tally.waiting_for_lock += 1,
                        Expired::Changed => {}
                    }
                } else if let Some(r) = &d.retention {
                    let leaving = d.transition.as_ref().filter(|m| m.tier != row.blob.tier).and_then(|m| m.at);
                    let before = tally.locks.extended;
                    let of_row = versions.get(row.instance.sop_uid.as_str()).map_or(&[][..], Vec::as_slice);
                    archive.retain(ctx, of_row, r, leaving, &mut tally.locks).await?;
                    if tally.locks.extended > before {
                        extended.push(row);
                    }
                }
                let move_due = d.transition.as_ref().filter(|m| m.tier != row.blob.tier && m.at.is_some_and(|at| at <= now));
                if let (false, Some(m)) = (d.expire_due(now), move_due) {
                    let (moved, bytes) = archive.move_to(ctx, row, &d, &m.tier, &set.hash, grace, bandwidth).await?;
                    tally.moved += moved;
                    tally.bytes_moved += bytes;
                }
                ctx.progress.done += 1;
                ctx.progress.cursor = Some(Cursor::Walk(row.pk).show());
            }
            Ok(())
        }
        .await;
        if !extended.is_empty() {
            // DICOM Instances Accessed, Update (PS3.15 A.5.3.3): their protection changed.
            let what = format!("retention extended as the lifecycle policies {} ask (job {})", set.hash, ctx.job().id);
            // Recorded as the moves and expiries are: the archive's own work on the policies'
            // behalf (`audited` leaves out the system's routine work).
            let event = crate::audit::event(&me, crate::EventId::InstancesAccessed, "U", &extended, what);
            let recorded = archive.catalog().record_audit(vec![event]).await;
            recorded.map_err(|e| JobError::Failed(format!("recording the audit event: {e}")))?;
        }
        walked?;
        if last >= up_to {
            break;
        }
        cursor = Cursor::Walk(last);
    }
    Ok(serde_json::json!({
        "keys": [after_key, up_to],
        "ranBy": ctx.owner(),
        "now": crate::utc_timestamp(now),
        "policySet": set.hash,
        "examined": tally.examined,
        "expired": tally.expired,
        "purged": tally.purged,
        "waitingForLock": tally.waiting_for_lock,
        "moved": tally.moved,
        "bytesMoved": tally.bytes_moved,
        "awaitingGrace": tally.awaiting_grace,
        "locks": {
            "extended": tally.locks.extended,
            "unchanged": tally.locks.unchanged,
            "longerThanPolicy": tally.locks.longer_than_policy,
            "notLockable": tally.locks.not_lockable,
            "retentionOver": tally.locks.retention_over,
        },
        "failed": ctx.progress.failed,
    }))
}

/// What became of one expiry.
enum Expired {
    /// Gone from the catalog; this many object versions destroyed.
    Done(u64),
    /// The store still protects a version: nothing changed.
    Locked,
    /// Its versions changed since the decision: nothing changed (decided again next run).
    Changed,
}

impl Archive {
    /// Every recorded version of the instance of `row` (a lifecycle step acts on them all).
    pub(crate) async fn all_versions(&self, row: &InstanceRow) -> Result<Vec<InstanceRow>, ArchiveError> {
        self.catalog
            .instance_versions(&row.instance.sop_uid, &vna_catalog::Visibility::ALL)
            .await
            .map_err(ArchiveError::catalog("listing versions"))
    }

    /// Expires one instance (every version) as the policies decided.
    async fn expire(
        &self,
        ctx: &mut crate::jobs::JobCtx,
        row: &InstanceRow,
        d: &Decision,
        policy_set: &str,
    ) -> Result<Expired, crate::jobs::JobError> {
        let versions = self.all_versions(row).await?;
        // The store decides whether a version may go yet: its own clock, its own locks.
        for v in &versions {
            let name = object_name(&v.blob.tier, &v.blob.key);
            let protection = match self.store_of(&v.blob.tier) {
                Ok(store) => store.protection(crate::blob_ref(v)).await,
                Err(e) => {
                    ctx.fail(name, e.to_string());
                    return Ok(Expired::Locked);
                }
            };
            match protection {
                Ok(p) if p.forbids_delete(std::time::SystemTime::now()) => {
                    let until = p.retention.map(|r| {
                        let ms = r.retain_until.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
                        crate::utc_timestamp(ms)
                    });
                    let why = match (p.legal_hold, until) {
                        (true, _) => "expired by policy, but under legal hold in its store".to_owned(),
                        (false, Some(u)) => format!("expired by policy, but locked in its store until {u}"),
                        (false, None) => "expired by policy, but locked in its store".to_owned(),
                    };
                    ctx.fail(name, why);
                    return Ok(Expired::Locked);
                }
                Ok(_) | Err(vna_blob::BlobError::NotFound { .. }) => {}
                Err(e) => {
                    ctx.fail(name, format!("cannot read the object's protection: {e}"));
                    return Ok(Expired::Locked);
                }
            }
        }
        // DICOM Study Deleted (A.5.3.6), action D: the archive's own act, on its policies' word,
        // recorded in the same transaction as the deletion.
        let mut audit = crate::audit::event(&crate::Principal::system(), crate::EventId::StudyDeleted, "D", &[row], "");
        audit.instances = versions.len() as i64;
        audit.detail = format!("expired by lifecycle rules {} (policy set {policy_set})", d.rules.join(", "));
        let expiry = vna_catalog::Expiry {
            sop_uid: row.instance.sop_uid.clone(),
            version_pks: versions.iter().map(|v| v.pk).collect(),
            reason: "expired".into(),
            rules: d.rules.clone(),
            policy_set: policy_set.to_owned(),
            now_ms: crate::now_ms(),
            audit: Some(audit),
        };
        let stones = match self.catalog.expire_instance(&expiry).await.map_err(ArchiveError::catalog("expiring an instance"))? {
            vna_catalog::ExpiryOutcome::Expired(stones) => stones,
            vna_catalog::ExpiryOutcome::Changed => return Ok(Expired::Changed),
            vna_catalog::ExpiryOutcome::Held => {
                ctx.fail(object_name(&row.blob.tier, &row.blob.key), "expired by policy, but a legal hold is recorded on it");
                return Ok(Expired::Locked);
            }
        };
        let mut purged = 0;
        for t in &stones {
            if self.purge(ctx, t).await? {
                purged += 1;
            }
        }
        Ok(Expired::Done(purged))
    }

    /// Locks every version of an instance as its policies' retention `r` asks, in its store:
    /// a version locked shorter (or not at all, or in GOVERNANCE where COMPLIANCE is asked) is
    /// locked to the policy's date (or the lock horizon, or on a tier it is to leave at
    /// `leaving`, that date plus the hot margin); one locked longer in COMPLIANCE mode is
    /// counted, never shortened. With a horizon or a margin, a lock is extended once less than
    /// half of it is left, so each object costs about two updates per horizon.
    async fn retain(
        &self,
        ctx: &mut crate::jobs::JobCtx,
        versions: &[InstanceRow],
        r: &vna_lifecycle::Retention,
        leaving: Option<i64>,
        locks: &mut Locks,
    ) -> Result<(), crate::jobs::JobError> {
        use std::time::{Duration, SystemTime};
        let now = crate::now_ms();
        let LockPlan { lock: want, enough, policy_end } = self.lock_plan(r, leaving, now);
        let now_sys = SystemTime::now();
        if want.retain_until <= now_sys {
            locks.retention_over += versions.len() as u64;
            return Ok(());
        }
        for v in versions {
            let name = object_name(&v.blob.tier, &v.blob.key);
            let store = match self.store_of(&v.blob.tier) {
                Ok(s) => s,
                Err(e) => {
                    ctx.fail(name, e.to_string());
                    continue;
                }
            };
            if store.locking() == vna_blob::Locking::None {
                locks.not_lockable += 1;
                continue;
            }
            let current = match store.protection(crate::blob_ref(v)).await {
                Ok(p) => p.retention.filter(|c| c.retain_until > now_sys),
                Err(e) => {
                    ctx.fail(name, format!("cannot read the object's retention: {e}"));
                    continue;
                }
            };
            let weaker_mode =
                |c: &vna_blob::Retention| c.mode == vna_blob::LockMode::Governance && want.mode == vna_blob::LockMode::Compliance;
            match current {
                Some(c) if c.retain_until >= enough && !weaker_mode(&c) => {
                    if c.mode == vna_blob::LockMode::Compliance && c.retain_until > policy_end + Duration::from_secs(1) {
                        locks.longer_than_policy += 1;
                    } else {
                        locks.unchanged += 1;
                    }
                }
                c => {
                    let new = vna_blob::Retention::strongest(c, Some(want)).unwrap_or(want);
                    match store.set_retention(crate::blob_ref(v), new).await {
                        Ok(()) => locks.extended += 1,
                        Err(e) => ctx.fail(name, format!("the store refused the lock the policies ask for: {e}")),
                    }
                }
            }
        }
        Ok(())
    }

    /// Destroys a tombstone's object version and marks it purged; false (with the reason
    /// recorded) when the store refused.
    pub(crate) async fn purge(&self, ctx: &mut crate::jobs::JobCtx, t: &vna_catalog::Tombstone) -> Result<bool, crate::jobs::JobError> {
        let name = object_name(&t.blob.tier, &t.blob.key);
        let store = match self.store_of(&t.blob.tier) {
            Ok(s) => s,
            Err(e) => {
                ctx.fail(name, e.to_string());
                return Ok(false);
            }
        };
        match store.delete(vna_blob::BlobRef::new(&t.blob.key, t.blob.version_id.as_deref())).await {
            Ok(()) | Err(vna_blob::BlobError::NotFound { .. }) => {}
            Err(e) => {
                ctx.fail(name, format!("the store refused to destroy the object ({}): {e}", t.reason));
                return Ok(false);
            }
        }
        self.catalog.mark_purged(t.pk, crate::now_ms()).await.map_err(ArchiveError::catalog("marking a tombstone purged"))?;
        Ok(true)
    }
}
