//! `vna lifecycle plan`: what the policies would do to the objects the catalog holds, without
//! doing it — per rule, retention, tier and expiry, counts and bytes, example objects by opaque
//! id, and a plan hash over the policy set and every decision, what is due included (so that
//! applying a plan can later refuse when the policies, the catalog or what is due changed).
//! Read-only: nothing is locked, moved or deleted.

use serde_json::Value;
use std::sync::Arc;
use vna_archive::{Archive, Principal};
use vna_lifecycle::PolicySet;

/// The plan of `set` as of `now` (`vna_archive::plan`), as the archive itself sees the catalog.
pub async fn plan(archive: Arc<Archive>, set: &PolicySet, now: i64, objects: bool, with_uids: bool) -> anyhow::Result<Value> {
    Ok(archive.lifecycle_plan(&Principal::system(), Some(set), now, objects, with_uids).await?)
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
/// policies), queues the apply jobs (one per `keys_per_job` instance keys) and, unless
/// `queue_only`, runs jobs here until those are over (other nodes may take some: the catalog
/// hands each to one runner at a time). Returns the run as JSON: its jobs, their overall
/// state, their outcomes summed, and the first failures.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    archive: Arc<Archive>,
    config: &vna_config::Config,
    now: i64,
    plan_hash: &str,
    pace: vna_archive::Pace,
    move_grace_seconds: Option<u64>,
    keys_per_job: Option<i64>,
    queue_only: bool,
) -> anyhow::Result<Value> {
    let me = Principal::system();
    let ids = match archive.queue_lifecycle_apply(&me, now, plan_hash, pace, move_grace_seconds, keys_per_job).await {
        Err(vna_archive::ArchiveError::PlanChanged { current }) => anyhow::bail!(
            "the plan changed since it was made (the catalog or the policies differ): its hash is now {current}, not \
             {plan_hash}; look at the new plan (vna lifecycle plan) before applying it"
        ),
        other => other?,
    };
    if !queue_only {
        // `jobs.runners` runners here, each taking the run's jobs one after the other.
        let secs = std::time::Duration::from_secs;
        let base = vna_archive::jobs::Worker::for_this_process(secs(config.jobs.lease_seconds), secs(1));
        let mut runners = Vec::new();
        for n in 0..config.jobs.runners.max(1) {
            let worker = vna_archive::jobs::Worker { owner: format!("{}#{n}", base.owner), ..base.clone() };
            let (archive, ids) = (archive.clone(), ids.clone());
            runners.push(tokio::spawn(async move {
                let (_stop_tx, stop) = tokio::sync::watch::channel(false);
                loop {
                    let mut over = true;
                    for &id in &ids {
                        let job = archive.catalog().job(id).await?.ok_or_else(|| anyhow::anyhow!("job {id} vanished"))?;
                        over &= job.state.is_final();
                    }
                    if over {
                        return anyhow::Ok(());
                    }
                    if archive.run_one_job(&worker, &stop).await?.is_none() {
                        // Another runner or node has the rest (or it waits its turn): look again.
                        tokio::time::sleep(worker.poll).await;
                    }
                }
            }));
        }
        for r in runners {
            r.await??;
        }
    }
    let mut jobs = Vec::new();
    for &id in &ids {
        let job = archive.catalog().job(id).await?.ok_or_else(|| anyhow::anyhow!("job {id} vanished"))?;
        let failures = archive.catalog().job_failures(id, 20, 0).await?;
        jobs.push(vna_archive::jobs::job_json(&job, &failures));
    }
    Ok(summary(jobs))
}

/// The jobs of one run as one: `state` done when all are (else the first that is not),
/// numeric outcome fields summed, failures listed together (at most 20).
fn summary(jobs: Vec<Value>) -> Value {
    fn add(into: &mut Value, from: &Value) {
        match (into, from) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(k) {
                        Some(slot) => add(slot, v),
                        None => {
                            a.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (slot @ Value::Number(_), Value::Number(n)) => {
                *slot = Value::from(slot.as_i64().unwrap_or(0) + n.as_i64().unwrap_or(0));
            }
            _ => {}
        }
    }
    let state = jobs.iter().map(|j| j["state"].as_str().unwrap_or("")).find(|s| *s != "done").unwrap_or("done").to_owned();
    let mut outcome = Value::Null;
    for j in &jobs {
        if outcome.is_null() {
            outcome = j["outcome"].clone();
        } else {
            add(&mut outcome, &j["outcome"]);
        }
    }
    let failures: Vec<Value> = jobs.iter().flat_map(|j| j["failures"].as_array().cloned().unwrap_or_default()).take(20).collect();
    serde_json::json!({
        "jobs": jobs.iter().map(|j| j["id"].clone()).collect::<Vec<_>>(),
        "state": state,
        "outcome": outcome,
        "failures": failures,
        "details": jobs,
    })
}
