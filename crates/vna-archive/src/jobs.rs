//! Background jobs: the one mechanism for work that outlives a request (lifecycle today;
//! migration and reindexing later). Work is queued in the catalog and claimed by any node's
//! runner under a lease (`vna_catalog::Catalog::claim_job`): two nodes never hold one job, a
//! dead node's job is taken over when its lease lapses, and the new owner resumes from the last
//! cursor its predecessor recorded. A job's steps are idempotent (an object already handled is
//! found handled), so work done after the last renewal is only done again, never lost.
//!
//! A job runs through a [`JobCtx`]: it records progress (a cursor, counts, the objects it could
//! not handle and why: a job always moves on) and calls [`JobCtx::checkpoint`] between steps,
//! which renews the lease when a third of it has passed and says when to stop: the node shuts
//! down (the job goes back to the queue with its progress), an administrator cancelled it, or
//! the lease was lost. Time for leases is the wall clock; what a job decides about (a policy's
//! "now") is a parameter of the job.

use crate::{Archive, ArchiveError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use vna_catalog::{JobFailure, JobRow, JobState, NewJob, Progress};

/// How a node's runner works.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Who holds the leases (unique per process: host, process id, start time).
    pub owner: String,
    pub lease: Duration,
    /// How often an idle runner looks for work.
    pub poll: Duration,
}

impl Worker {
    /// A worker named after this host and process.
    pub fn for_this_process(lease: Duration, poll: Duration) -> Worker {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "node".into());
        Worker { owner: format!("{host}:{}:{}", std::process::id(), crate::now_ms()), lease, poll }
    }
}

/// Why a job stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// An administrator cancelled it: it ends as cancelled.
    Cancelled,
    /// Its lease is no longer ours (it lapsed and another node took the job): stop, write nothing.
    LeaseLost,
    /// This node is shutting down: the job goes back to the queue with its progress.
    Shutdown,
}

/// How a job's run ended early.
#[derive(Debug)]
pub enum JobError {
    Stopped(Stop),
    /// The job cannot go on (bad parameters, policies changed): it ends as failed, with why.
    Failed(String),
}

impl From<Stop> for JobError {
    fn from(s: Stop) -> Self {
        JobError::Stopped(s)
    }
}

impl From<ArchiveError> for JobError {
    fn from(e: ArchiveError) -> Self {
        JobError::Failed(e.to_string())
    }
}

/// A claimed job as its code sees it.
pub struct JobCtx {
    archive: Arc<Archive>,
    job: JobRow,
    owner: String,
    lease: Duration,
    /// Progress to record with the next renewal (failures are sent once, then cleared).
    pub progress: Progress,
    renewed: Instant,
    stop: watch::Receiver<bool>,
}

impl JobCtx {
    pub fn job(&self) -> &JobRow {
        &self.job
    }

    pub fn archive(&self) -> &Arc<Archive> {
        &self.archive
    }

    /// The runner holding the job.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// An object (an opaque id, never PHI) the job could not handle, and why; the job goes on.
    pub fn fail(&mut self, object: impl Into<String>, reason: impl Into<String>) {
        self.progress.failed += 1;
        self.progress.failures.push(JobFailure { object: object.into(), reason: reason.into(), at_ms: crate::now_ms() });
    }

    /// Between two steps: renews the lease (recording progress) once a third of it has passed,
    /// and says whether to stop.
    pub async fn checkpoint(&mut self) -> Result<(), Stop> {
        if *self.stop.borrow() {
            return Err(Stop::Shutdown);
        }
        if self.renewed.elapsed() < self.lease / 3 {
            return Ok(());
        }
        self.renew().await
    }

    /// Rests `how_long` (a pace), renewing the lease and heeding a stop or a cancellation
    /// meanwhile.
    pub async fn rest(&mut self, how_long: Duration) -> Result<(), Stop> {
        let until = Instant::now() + how_long;
        loop {
            self.checkpoint().await?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let step = left.min(self.lease / 6).max(Duration::from_millis(1));
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = self.stop.wait_for(|s| *s) => return Err(Stop::Shutdown),
            }
        }
    }

    async fn renew(&mut self) -> Result<(), Stop> {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        match self.archive.catalog().renew_job(self.job.id, &self.owner, crate::now_ms(), lease_ms, &self.progress).await {
            Ok(r) if !r.held => Err(Stop::LeaseLost),
            Ok(r) => {
                self.renewed = Instant::now();
                self.progress.failures.clear();
                if r.cancel_requested {
                    Err(Stop::Cancelled)
                } else {
                    Ok(())
                }
            }
            // The catalog is unreachable: go on while the lease may still be ours.
            Err(e) if self.renewed.elapsed() < self.lease => {
                tracing::warn!(job = self.job.id, error = %e, "could not renew a job's lease; retrying at the next step");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(job = self.job.id, error = %e, "a job's lease lapsed while the catalog was unreachable");
                Err(Stop::LeaseLost)
            }
        }
    }
}

impl Archive {
    /// Queues a job; returns its id.
    pub async fn enqueue_job(&self, kind: &str, params: &serde_json::Value, not_before_ms: i64) -> Result<i64, ArchiveError> {
        let now = crate::now_ms();
        let job = NewJob { kind: kind.to_owned(), params: params.to_string(), now_ms: now, not_before_ms };
        self.catalog.enqueue_job(&job).await.map_err(ArchiveError::catalog("queueing a job"))
    }

    /// Jobs, newest first (administrators).
    pub async fn jobs(&self, who: &crate::Principal, q: &vna_catalog::JobQuery) -> Result<Vec<JobRow>, ArchiveError> {
        self.require(who, crate::Permission::Admin).await?;
        self.catalog.jobs(q).await.map_err(ArchiveError::catalog("listing jobs"))
    }

    /// One job and the first `failures` objects it could not handle (administrators).
    pub async fn job(&self, who: &crate::Principal, id: i64, failures: u32) -> Result<(JobRow, Vec<JobFailure>), ArchiveError> {
        self.require(who, crate::Permission::Admin).await?;
        let job = self.catalog.job(id).await.map_err(ArchiveError::catalog("reading a job"))?;
        let job = job.ok_or(ArchiveError::NotFound { what: "job" })?;
        let list = self.catalog.job_failures(id, failures, 0).await.map_err(ArchiveError::catalog("reading a job's failures"))?;
        Ok((job, list))
    }

    /// Cancels a queued job, or asks a running one to stop at its next step (administrators);
    /// the job's state afterwards.
    pub async fn cancel_job(&self, who: &crate::Principal, id: i64) -> Result<JobState, ArchiveError> {
        self.require(who, crate::Permission::Admin).await?;
        let state = self.catalog.cancel_job(id, crate::now_ms()).await.map_err(ArchiveError::catalog("cancelling a job"))?;
        state.ok_or(ArchiveError::NotFound { what: "job" })
    }

    /// The kinds of job this node can run: legal holds, and lifecycle jobs only for the policy
    /// set it has (a job names the set it was queued for, so a node configured otherwise never
    /// takes it).
    pub fn job_kinds(&self) -> Vec<String> {
        let lifecycle = self.policies().map(|set| crate::apply::apply_kind(&set.hash));
        lifecycle.into_iter().chain([crate::hold::HOLD_JOB.to_owned()]).collect()
    }

    /// Claims one job (of [`Archive::job_kinds`]) and runs it to its end or until `stop`;
    /// returns its id and how it ended, `None` when there was nothing to do.
    pub async fn run_one_job(
        self: &Arc<Self>,
        worker: &Worker,
        stop: &watch::Receiver<bool>,
    ) -> Result<Option<(i64, JobState)>, ArchiveError> {
        let kinds = self.job_kinds();
        let lease_ms = i64::try_from(worker.lease.as_millis()).unwrap_or(i64::MAX);
        let claimed = self.catalog.claim_job(&worker.owner, &kinds, crate::now_ms(), lease_ms).await;
        let Some(job) = claimed.map_err(ArchiveError::catalog("claiming a job"))? else { return Ok(None) };
        let id = job.id;
        tracing::info!(job = id, kind = %job.kind, attempt = job.attempts, "job started");
        let mut ctx = JobCtx {
            archive: self.clone(),
            progress: Progress { failures: Vec::new(), ..job.progress.clone() },
            job,
            owner: worker.owner.clone(),
            lease: worker.lease,
            renewed: Instant::now(),
            stop: stop.clone(),
        };
        let result = if ctx.job.kind.starts_with(crate::apply::APPLY_JOB) {
            crate::apply::apply_job(&mut ctx).await
        } else if ctx.job.kind == crate::hold::HOLD_JOB {
            crate::hold::hold_job(&mut ctx).await
        } else {
            Err(JobError::Failed(format!("unknown job kind {}", ctx.job.kind)))
        };
        let now = crate::now_ms();
        let (owner, p) = (&worker.owner, &ctx.progress);
        let catalog = self.catalog();
        let ended = match result {
            Ok(summary) => catalog.finish_job(id, owner, JobState::Done, &summary.to_string(), p, now).await.map(|_| JobState::Done),
            Err(JobError::Failed(why)) => catalog.finish_job(id, owner, JobState::Failed, &why, p, now).await.map(|_| JobState::Failed),
            Err(JobError::Stopped(Stop::Cancelled)) => {
                catalog.finish_job(id, owner, JobState::Cancelled, "cancelled", p, now).await.map(|_| JobState::Cancelled)
            }
            Err(JobError::Stopped(Stop::Shutdown)) => catalog.release_job(id, owner, p).await.map(|_| JobState::Queued),
            Err(JobError::Stopped(Stop::LeaseLost)) => Ok(JobState::Running),
        };
        let state = ended.map_err(ArchiveError::catalog("recording the end of a job"))?;
        tracing::info!(job = id, state = state.as_str(), done = p.done, failed = p.failed, "job stopped");
        Ok(Some((id, state)))
    }

    /// Runs jobs until `stop` turns true: the scheduler of a node. An idle runner looks for work
    /// every `worker.poll`; a catalog failure is logged and retried after the same pause.
    pub async fn run_jobs(self: Arc<Self>, worker: Worker, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let idle = match self.run_one_job(&worker, &stop).await {
                Ok(Some(_)) => false,
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "the job runner could not claim or record a job");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(worker.poll) => {}
                    changed = stop.changed() => if changed.is_err() {
                        // Nobody can tell us to stop any more: the node is going away.
                        return;
                    }
                }
            }
        }
    }
}

impl Archive {
    /// Offers the periodic apply run ([`Archive::offer_scheduled_apply`]) every `poll` until
    /// `stop`: the schedule of a node. Every node may run it; the catalog lets one queue each
    /// period's run. A catalog failure is logged and tried again at the next look.
    pub async fn run_schedule(self: Arc<Self>, every: Duration, poll: Duration, pace: crate::Pace, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.offer_scheduled_apply(every, crate::now_ms(), pace).await {
                tracing::warn!(error = %e, "could not queue the scheduled lifecycle apply run; trying again shortly");
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// A job for people and scripts: what it is, where it is, what it did.
pub fn job_json(job: &JobRow, failures: &[JobFailure]) -> serde_json::Value {
    let outcome = job
        .outcome
        .as_deref()
        .map(|o| serde_json::from_str::<serde_json::Value>(o).unwrap_or_else(|_| serde_json::Value::String(o.to_owned())));
    serde_json::json!({
        "id": job.id,
        "kind": job.kind,
        "state": job.state.as_str(),
        "attempts": job.attempts,
        "createdAt": crate::utc_timestamp(job.created_at_ms),
        "startedAt": job.started_at_ms.map(crate::utc_timestamp),
        "finishedAt": job.finished_at_ms.map(crate::utc_timestamp),
        "owner": job.lease_owner,
        "leaseUntil": job.lease_until_ms.map(crate::utc_timestamp),
        "cancelRequested": job.cancel_requested,
        "progress": { "cursor": job.progress.cursor, "done": job.progress.done, "failed": job.progress.failed, "total": job.progress.total },
        "outcome": outcome,
        "failures": failures.iter().map(|f| serde_json::json!({ "object": f.object, "reason": f.reason, "at": crate::utc_timestamp(f.at_ms) })).collect::<Vec<_>>(),
    })
}
