//! Lifecycle plans: what the policies would do to the objects the catalog holds, without doing
//! it — per rule, retention, tier and expiry, counts and bytes, example objects by opaque id,
//! and a plan hash over the policy set and every decision, what is due included, so that
//! applying a plan refuses when the policies, the catalog or what is due changed since
//! (`Archive::queue_lifecycle_apply`). Read-only: nothing is locked, moved or deleted. Served by
//! `vna lifecycle plan` and `GET /admin/lifecycle/plan`.

use crate::{Archive, ArchiveError, Permission, Principal};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use vna_lifecycle::{Decision, PolicySet};

const PAGE: u32 = 1000;
/// Example objects named per rule and per action.
const EXAMPLES: usize = 3;

fn patient_key(row: &vna_catalog::InstanceRow) -> (String, String) {
    (row.patient.patient_id.clone(), row.patient.issuer_of_patient_id.clone())
}

#[derive(Default)]
struct Tally {
    instances: u64,
    bytes: u64,
    examples: Vec<String>,
}

impl Tally {
    fn add(&mut self, row: &vna_catalog::InstanceRow) {
        self.instances += 1;
        self.bytes += row.blob.size;
        if self.examples.len() < EXAMPLES {
            self.examples.push(format!("{}/{}", row.blob.tier, row.blob.key));
        }
    }

    fn json(&self) -> Value {
        json!({ "instances": self.instances, "bytes": self.bytes, "examples": self.examples })
    }
}

/// The plan as JSON: the whole report, and with `objects` one line per instance (with its SOP
/// Instance UID only when `with_uids`: UIDs can identify a patient).
pub(crate) async fn plan(
    archive: &Archive,
    me: &Principal,
    set: &PolicySet,
    now: i64,
    objects: bool,
    with_uids: bool,
) -> Result<Value, ArchiveError> {
    // The patient's last study as the archive counts it at ingest and in the protection view,
    // asked once per patient; the rows themselves are read a page at a time.
    let mut last_study: HashMap<(String, String), Option<i64>> = HashMap::new();
    let mut digest = Sha256::new();
    digest.update(set.hash.as_bytes());
    let (mut all, mut per_rule, mut locked, mut unlocked, mut undetermined) =
        (Tally::default(), BTreeMap::<String, Tally>::new(), BTreeMap::<&str, Tally>::new(), Tally::default(), Tally::default());
    let (mut moves_due, mut moves_later, mut expire_due, mut expire_later, mut held) =
        (BTreeMap::<String, Tally>::new(), BTreeMap::<String, Tally>::new(), Tally::default(), Tally::default(), Tally::default());
    let (mut earliest, mut latest) = (i64::MAX, i64::MIN);
    let mut lines = Vec::new();
    let mut after = 0;
    loop {
        let page = archive.all_instances_after(me, after, PAGE).await?;
        let n = page.len() as u32;
        for row in &page {
            let last = match last_study.get(&patient_key(row)) {
                Some(last) => *last,
                None => {
                    let last = archive.patient_last_study(&row.patient).await?;
                    last_study.insert(patient_key(row), last);
                    last
                }
            };
            let d: Decision = set.decide(&crate::lifecycle_facts(row, last), now);
            all.add(row);
            for r in &d.rules {
                per_rule.entry(r.clone()).or_default().add(row);
            }
            match &d.retention {
                Some(r) => {
                    locked.entry(r.mode.as_str()).or_default().add(row);
                    earliest = earliest.min(r.until);
                    latest = latest.max(r.until);
                }
                None => unlocked.add(row),
            }
            if !d.undetermined.is_empty() {
                undetermined.add(row);
            }
            // A move to the tier the object is already on is nothing to do.
            let to_move = d.transition.as_ref().filter(|m| m.tier != row.blob.tier);
            let move_due = to_move.is_some_and(|m| m.at.is_some_and(|at| at <= now));
            if let Some(m) = to_move {
                (if move_due { &mut moves_due } else { &mut moves_later }).entry(m.tier.clone()).or_default().add(row);
            }
            let expire_now = d.expire_due(now);
            if d.expire_at.is_some() {
                (if expire_now { &mut expire_due } else { &mut expire_later }).add(row);
            }
            if !d.hold.is_empty() {
                held.add(row);
            }
            let mut line = json!({
                "object": format!("{}/{}", row.blob.tier, row.blob.key),
                "version": row.blob.version_id,
                "rules": d.rules,
                "retainUntil": d.retention.as_ref().map(|r| crate::utc_timestamp(r.until)),
                "mode": d.retention.as_ref().map(|r| r.mode.as_str()),
                "undetermined": d.undetermined,
                "tier": d.transition.as_ref().map(|m| m.tier.clone()),
                "moveAt": d.transition.as_ref().and_then(|m| m.at).map(crate::utc_timestamp),
                "moveDue": move_due,
                "expireAt": d.expire_at.map(crate::utc_timestamp),
                "expireDue": expire_now,
                "hold": !d.hold.is_empty(),
            });
            // The plan hash covers each object's identity and decision, not the UID shown.
            digest.update(row.pk.to_be_bytes());
            digest.update(line.to_string().as_bytes());
            if objects {
                if with_uids {
                    line["sopInstanceUid"] = Value::String(row.instance.sop_uid.to_string());
                }
                lines.push(line);
            }
        }
        match page.last() {
            Some(last) if n == PAGE => after = last.pk,
            _ => break,
        }
    }
    let tallies = |m: &BTreeMap<String, Tally>| m.iter().map(|(k, t)| (k.clone(), t.json())).collect::<serde_json::Map<_, _>>();
    let mut report = json!({
        "now": crate::utc_timestamp(now),
        "policySetHash": set.hash,
        "planHash": hex::encode(digest.finalize()),
        "instances": all.json(),
        "rules": tallies(&per_rule),
        "retention": {
            "locked": locked.iter().map(|(k, t)| ((*k).to_owned(), t.json())).collect::<serde_json::Map<_, _>>(),
            "notLocked": unlocked.json(),
            "undetermined": undetermined.json(),
            "earliest": (earliest != i64::MAX).then(|| crate::utc_timestamp(earliest)),
            "latest": (latest != i64::MIN).then(|| crate::utc_timestamp(latest)),
        },
        "transitions": { "due": tallies(&moves_due), "later": tallies(&moves_later) },
        "expiry": { "due": expire_due.json(), "later": expire_later.json() },
        "held": held.json(),
    });
    if objects {
        report["objects"] = Value::Array(lines);
    }
    Ok(report)
}

impl Archive {
    /// The plan of `set` (or, without one, the configured policies) as of `now`, for an
    /// administrator; with `objects`, one line per instance (its SOP Instance UID only with
    /// `with_uids`: UIDs can identify a patient).
    pub async fn lifecycle_plan(
        &self,
        who: &Principal,
        set: Option<&PolicySet>,
        now: i64,
        objects: bool,
        with_uids: bool,
    ) -> Result<Value, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let set = match set {
            Some(s) => s,
            None => self.policies().map(|s| &**s).ok_or(ArchiveError::NotFound { what: "lifecycle policy set" })?,
        };
        plan(self, who, set, now, objects, with_uids).await
    }

    /// Queues the jobs that apply the configured policies as of `now`, if the plan for that
    /// date still has the hash `plan_hash` (else `PlanChanged`, nothing queued): one per
    /// `keys_per_job` instance keys ([`crate::apply::KEYS_PER_JOB`] by default), which the
    /// runners of every node configured with the same policies share. Returns the jobs' ids.
    pub async fn queue_lifecycle_apply(
        &self,
        who: &Principal,
        now: i64,
        plan_hash: &str,
        pace: crate::Pace,
        move_grace_seconds: Option<u64>,
        keys_per_job: Option<i64>,
    ) -> Result<Vec<i64>, ArchiveError> {
        self.require(who, Permission::Admin).await?;
        let set = self.policies().cloned().ok_or(ArchiveError::NotFound { what: "lifecycle policy set" })?;
        let current = plan(self, who, &set, now, false, false).await?;
        let current = current["planHash"].as_str().unwrap_or_default();
        if current != plan_hash {
            return Err(ArchiveError::PlanChanged { current: current.to_owned() });
        }
        let params = crate::apply_params(now, &set.hash, pace, move_grace_seconds);
        let mut ids = Vec::new();
        for job in self.apply_run(&set, &params, keys_per_job, crate::now_ms()).await? {
            ids.push(self.catalog.enqueue_job(&job).await.map_err(ArchiveError::catalog("queueing a job"))?);
        }
        Ok(ids)
    }

    /// The jobs of one apply run with `params`: one per `keys_per_job` instance keys, the last
    /// open-ended (what arrives meanwhile is covered too), the first also purging what earlier
    /// runs left behind.
    async fn apply_run(
        &self,
        set: &PolicySet,
        params: &Value,
        keys_per_job: Option<i64>,
        queued_at: i64,
    ) -> Result<Vec<vna_catalog::NewJob>, ArchiveError> {
        let last = self.catalog.last_instance_key().await.map_err(ArchiveError::catalog("reading the catalog's extent"))?;
        let step = keys_per_job.unwrap_or(crate::apply::KEYS_PER_JOB).max(1);
        let kind = crate::apply_kind(&set.hash);
        let mut jobs = Vec::new();
        let mut after: i64 = 0;
        loop {
            let up_to = if after.saturating_add(step) >= last { i64::MAX } else { after + step };
            let shard = crate::apply::shard_params(params.clone(), after, up_to, after == 0);
            jobs.push(vna_catalog::NewJob { kind: kind.clone(), params: shard.to_string(), now_ms: queued_at, not_before_ms: queued_at });
            if up_to == i64::MAX {
                return Ok(jobs);
            }
            after = up_to;
        }
    }

    /// The periodic apply run (`lifecycle.apply_every_hours`), which every node's scheduler
    /// offers each time it looks: queued for the policies as of `now` when a new period has
    /// begun, by exactly one node of all those sharing the catalog, and not while an apply
    /// run of the same policies (scheduled or an administrator's) is still queued or running.
    /// It is also the pass that retries what earlier runs could not do: each run decides every
    /// instance afresh. Not gated by a plan hash: configuring the period is the administrator's
    /// consent to apply the configured policies as they stand. Returns the jobs queued.
    pub async fn offer_scheduled_apply(
        &self,
        every: std::time::Duration,
        now: i64,
        pace: crate::Pace,
    ) -> Result<Option<Vec<i64>>, ArchiveError> {
        let Some(set) = self.policies().cloned() else { return Ok(None) };
        let period = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
        let params = crate::apply_params(now, &set.hash, pace, None);
        let jobs = self.apply_run(&set, &params, None, now).await?;
        let busy = [crate::apply_kind(&set.hash)];
        let queued = self.catalog.enqueue_scheduled(crate::apply::APPLY_JOB, now / period, &busy, &jobs).await;
        let queued = queued.map_err(ArchiveError::catalog("queueing the scheduled apply run"))?;
        if let Some(ids) = &queued {
            tracing::info!(jobs = ids.len(), policies = %set.hash, "scheduled lifecycle apply run queued");
        }
        Ok(queued)
    }
}
