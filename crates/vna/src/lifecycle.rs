//! `vna lifecycle plan`: what the policies would do to the objects the catalog holds, without
//! doing it — per rule, retention, tier and expiry, counts and bytes, example objects by opaque
//! id, and a plan hash over the policy set and every decision, what is due included (so that
//! applying a plan can later refuse when the policies, the catalog or what is due changed).
//! Read-only: nothing is locked, moved or deleted.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use vna_archive::{Archive, Principal};
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
pub async fn plan(archive: Arc<Archive>, set: &PolicySet, now: i64, objects: bool, with_uids: bool) -> anyhow::Result<Value> {
    let me = Principal::system();
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
        let page = archive.all_instances_after(&me, after, PAGE).await?;
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
            let d: Decision = set.decide(&vna_archive::lifecycle_facts(row, last), now);
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
                "retainUntil": d.retention.as_ref().map(|r| vna_archive::utc_timestamp(r.until)),
                "mode": d.retention.as_ref().map(|r| r.mode.as_str()),
                "undetermined": d.undetermined,
                "tier": d.transition.as_ref().map(|m| m.tier.clone()),
                "moveAt": d.transition.as_ref().and_then(|m| m.at).map(vna_archive::utc_timestamp),
                "moveDue": move_due,
                "expireAt": d.expire_at.map(vna_archive::utc_timestamp),
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
        "now": vna_archive::utc_timestamp(now),
        "policySetHash": set.hash,
        "planHash": hex::encode(digest.finalize()),
        "instances": all.json(),
        "rules": tallies(&per_rule),
        "retention": {
            "locked": locked.iter().map(|(k, t)| ((*k).to_owned(), t.json())).collect::<serde_json::Map<_, _>>(),
            "notLocked": unlocked.json(),
            "undetermined": undetermined.json(),
            "earliest": (earliest != i64::MAX).then(|| vna_archive::utc_timestamp(earliest)),
            "latest": (latest != i64::MIN).then(|| vna_archive::utc_timestamp(latest)),
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

/// The plan for people: one line per figure.
pub fn render(plan: &Value) -> String {
    let mut out = String::new();
    let count = |v: &Value| format!("{} instances, {:.1} MB", v["instances"], v["bytes"].as_f64().unwrap_or(0.0) / 1e6);
    let examples = |v: &Value| match v["examples"].as_array() {
        Some(e) if !e.is_empty() => format!(" (e.g. {})", e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")),
        _ => String::new(),
    };
    out.push_str(&format!("plan at {} over {}\n", plan["now"].as_str().unwrap_or(""), count(&plan["instances"])));
    if let Some(rules) = plan["rules"].as_object() {
        for (name, t) in rules {
            out.push_str(&format!("  rule {name}: {}{}\n", count(t), examples(t)));
        }
    }
    let r = &plan["retention"];
    if let Some(locked) = r["locked"].as_object() {
        for (mode, t) in locked {
            out.push_str(&format!("  retention {mode}: {}\n", count(t)));
        }
    }
    out.push_str(&format!("  retention dates from {} to {}\n", r["earliest"].as_str().unwrap_or("-"), r["latest"].as_str().unwrap_or("-")));
    out.push_str(&format!("  not locked by any rule: {}\n", count(&r["notLocked"])));
    out.push_str(&format!("  retention undetermined (a date is missing): {}{}\n", count(&r["undetermined"]), examples(&r["undetermined"])));
    for (when, label) in [("due", "due now"), ("later", "later")] {
        if let Some(m) = plan["transitions"][when].as_object() {
            for (tier, t) in m {
                out.push_str(&format!("  move to {tier}, {label}: {}{}\n", count(t), examples(t)));
            }
        }
    }
    out.push_str(&format!("  expiry due now: {}{}\n", count(&plan["expiry"]["due"]), examples(&plan["expiry"]["due"])));
    out.push_str(&format!("  expiry later: {}\n", count(&plan["expiry"]["later"])));
    out.push_str(&format!("  held: {}\n", count(&plan["held"])));
    out.push_str(&format!(
        "policy set {}\nplan {}\n",
        plan["policySetHash"].as_str().unwrap_or(""),
        plan["planHash"].as_str().unwrap_or("")
    ));
    out
}

/// `vna lifecycle apply`: checks that the plan still holds (same hash for the same date and
/// policies), queues the apply job and, unless `queue_only`, runs jobs here until that one is
/// over (another node may take part of it: the catalog hands it to one runner at a time).
/// Returns the job as JSON: id, state, progress, outcome and the first failures.
pub async fn apply(
    archive: Arc<Archive>,
    config: &vna_config::Config,
    now: i64,
    plan_hash: &str,
    max_per_second: Option<u32>,
    queue_only: bool,
) -> anyhow::Result<Value> {
    let Some(set) = archive.policies().cloned() else { anyhow::bail!("no lifecycle policies loaded") };
    let current = plan(archive.clone(), &set, now, false, false).await?;
    let current_hash = current["planHash"].as_str().unwrap_or_default();
    if current_hash != plan_hash {
        anyhow::bail!(
            "the plan changed since it was made (the catalog or the policies differ): its hash is now {current_hash}, not \
             {plan_hash}; look at the new plan (vna lifecycle plan) before applying it"
        );
    }
    let params = vna_archive::apply_params(now, &set.hash, max_per_second);
    let id = archive.enqueue_job(&vna_archive::apply_kind(&set.hash), &params, vna_archive::now_ms()).await?;
    if !queue_only {
        let secs = std::time::Duration::from_secs;
        let worker = vna_archive::jobs::Worker::for_this_process(secs(config.jobs.lease_seconds), secs(1));
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        loop {
            let job = archive.catalog().job(id).await?.ok_or_else(|| anyhow::anyhow!("job {id} vanished"))?;
            if job.state.is_final() {
                break;
            }
            if archive.run_one_job(&worker, &stop).await?.is_none() {
                // Another node runs it (or it waits for its turn): look again shortly.
                tokio::time::sleep(worker.poll).await;
            }
        }
    }
    let job = archive.catalog().job(id).await?.ok_or_else(|| anyhow::anyhow!("job {id} vanished"))?;
    let failures = archive.catalog().job_failures(id, 20, 0).await?;
    Ok(job_json(&job, &failures))
}

/// A job for people and scripts: what it is, where it is, what it did.
pub fn job_json(job: &vna_catalog::JobRow, failures: &[vna_catalog::JobFailure]) -> Value {
    let outcome = job.outcome.as_deref().map(|o| serde_json::from_str::<Value>(o).unwrap_or_else(|_| Value::String(o.to_owned())));
    json!({
        "id": job.id,
        "kind": job.kind,
        "state": job.state.as_str(),
        "attempts": job.attempts,
        "createdAt": vna_archive::utc_timestamp(job.created_at_ms),
        "startedAt": job.started_at_ms.map(vna_archive::utc_timestamp),
        "finishedAt": job.finished_at_ms.map(vna_archive::utc_timestamp),
        "owner": job.lease_owner,
        "cancelRequested": job.cancel_requested,
        "progress": { "cursor": job.progress.cursor, "done": job.progress.done, "failed": job.progress.failed, "total": job.progress.total },
        "outcome": outcome,
        "failures": failures.iter().map(|f| json!({ "object": f.object, "reason": f.reason, "at": vna_archive::utc_timestamp(f.at_ms) })).collect::<Vec<_>>(),
    })
}
