//! Background jobs as the catalog keeps them: a queue any node may claim from, each claim a
//! lease with an owner and an end, renewed with the job's progress (a cursor to resume from,
//! counts, the objects that failed and why) while its owner lives. A lease that lapses (its
//! node died or hung) makes the job claimable again, and the next owner resumes from the last
//! cursor: job steps are idempotent, so work done after the last renewal is simply done again.
//!
//! Every write is one of the writer's operations ([`JobOp`], recorded in the group commit like
//! a registration), so on SQLite there is still a single writer, and
//! on PostgreSQL a claim also locks the row it takes with `FOR UPDATE SKIP LOCKED`: two nodes
//! never hold one job, and a claim never waits on a row another claim holds. Every condition
//! that decides ownership (`lease_owner`, `state`, `lease_until_ms`) is in the `WHERE` of the
//! statement that changes it, so a node whose lease was taken over learns it on its next
//! renewal and stops. Time is passed in (`now_ms`), never read here.

use crate::db::{AnyRow, Dialect, Pool, Tx, Value};
use crate::sqlbuild::SqlBuilder;
use crate::CatalogError;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a node to claim it (new, released at a node's shutdown, or retried).
    Queued,
    /// Claimed; its owner renews the lease while it works.
    Running,
    /// Finished; `outcome` says what it did.
    Done,
    /// Gave up; `outcome` says why.
    Failed,
    /// Cancelled by an administrator before or while it ran.
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Done, failed or cancelled: nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub kind: String,
    /// JSON parameters, opaque to the catalog.
    pub params: String,
    pub now_ms: i64,
    /// Not claimed before this time.
    pub not_before_ms: i64,
}

/// A job as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub params: String,
    pub state: JobState,
    pub created_at_ms: i64,
    pub not_before_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
    /// How many times it was claimed (more than once: taken over or resumed).
    pub attempts: i64,
    pub cancel_requested: bool,
    pub progress: Progress,
    pub outcome: Option<String>,
}

/// How far a job got: where to resume, and counts. `failures` are recorded with a renewal
/// (objects this stretch of work could not handle, and why) and are not read back here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub cursor: Option<String>,
    pub done: i64,
    pub failed: i64,
    pub total: Option<i64>,
    pub failures: Vec<JobFailure>,
}

/// An object a job could not handle (an opaque id, never PHI), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub object: String,
    pub reason: String,
    pub at_ms: i64,
}

/// What a renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// False: the lease is no longer ours (lapsed and taken over, or the job was finished):
    /// stop at once, without finishing.
    pub held: bool,
    /// An administrator asked for the job to stop: finish it as cancelled.
    pub cancel_requested: bool,
}

/// Which jobs to list: newest first, optionally of one state and kind, before an id (paging).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// The job writes the catalog's writer knows.
#[derive(Debug, Clone)]
pub(crate) enum JobOp {
    Enqueue(NewJob),
    /// The jobs of one run of the schedule `name` for period `slot`, queued only if no run of
    /// that slot or a later one was queued, and no job of `busy_kinds` is still queued or
    /// running (a run that outlasts its period postpones the next, it does not pile up).
    EnqueueScheduled {
        name: String,
        slot: i64,
        busy_kinds: Vec<String>,
        jobs: Vec<NewJob>,
    },
    /// The oldest claimable job of one of `kinds`: queued and due, or running with a lapsed
    /// lease.
    Claim {
        owner: String,
        kinds: Vec<String>,
        now_ms: i64,
        lease_ms: i64,
    },
    Renew {
        id: i64,
        owner: String,
        now_ms: i64,
        lease_ms: i64,
        progress: Progress,
    },
    /// Ends a job the caller holds as done, failed or cancelled.
    Finish {
        id: i64,
        owner: String,
        state: JobState,
        outcome: String,
        progress: Progress,
        now_ms: i64,
    },
    /// Gives a held job back to the queue (a node shutting down), to resume from `progress`.
    Release {
        id: i64,
        owner: String,
        progress: Progress,
    },
    Cancel {
        id: i64,
        now_ms: i64,
    },
    /// Removes an instance's versions, leaving tombstones (see `expiry.rs`).
    Expire(Box<crate::expiry::Expiry>),
    /// A tombstone's object was destroyed.
    Purged {
        pk: i64,
        now_ms: i64,
    },
    /// An instance version switched to its copy on another tier.
    Move(Box<crate::expiry::TierMove>),
    /// These instance versions were read at `at_ms` (a node's batch of accesses).
    Accessed {
        pks: Vec<i64>,
        at_ms: i64,
    },
    /// A report sent through the API, with its change.
    AddReport(Box<crate::report::NewReport>),
    /// A `search-reindex` change.
    RequestReindex {
        at_ms: i64,
    },
    /// The legal hold flag of one instance version.
    MarkHold {
        pk: i64,
        on: bool,
    },
}

#[derive(Debug)]
pub(crate) enum JobReply {
    Enqueued(i64),
    /// The ids of a scheduled run's jobs; `None`: not queued (the slot was taken or a run is
    /// still going).
    Scheduled(Option<Vec<i64>>),
    Claimed(Option<Box<JobRow>>),
    Renewed(Renewal),
    /// Whether the caller still held the job.
    Ended(bool),
    /// The job's state after the request (`None`: no such job).
    Cancel(Option<JobState>),
    /// The tombstones written, or `None` when the versions changed since the decision.
    Expired(crate::expiry::ExpiryOutcome),
    /// The old location's tombstone, or `None` when the version was no longer there.
    Moved(Option<Box<crate::expiry::Tombstone>>),
    /// Instance versions whose last access moved forward.
    Accesses(u64),
    /// The key of a recorded report, or the seq of a reindex request.
    Report(i64),
}

const COLUMNS: &str = "id, kind, params, state, created_at_ms, not_before_ms, started_at_ms, finished_at_ms, lease_owner, \
     lease_until_ms, attempts, cancel_requested, cursor, done_count, failed_count, total_count, outcome";

fn decode(row: &AnyRow) -> Result<JobRow, CatalogError> {
    let mut c = row.cols();
    Ok(JobRow {
        id: c.int("job id")?,
        kind: c.text("job kind")?,
        params: c.text("job params")?,
        state: JobState::parse(&c.text("job state")?).ok_or(CatalogError::Corrupt { what: "job state" })?,
        created_at_ms: c.int("job created")?,
        not_before_ms: c.int("job not before")?,
        started_at_ms: c.opt_int("job started")?,
        finished_at_ms: c.opt_int("job finished")?,
        lease_owner: c.opt_text("job lease owner")?,
        lease_until_ms: c.opt_int("job lease end")?,
        attempts: c.int("job attempts")?,
        cancel_requested: c.flag("job cancel requested")?,
        progress: Progress {
            cursor: c.opt_text("job cursor")?,
            done: c.int("job done count")?,
            failed: c.int("job failed count")?,
            total: c.opt_int("job total count")?,
            failures: Vec::new(),
        },
        outcome: c.opt_text("job outcome")?,
    })
}

/// `cursor = ?, done_count = ?, failed_count = ?, total_count = ?` and its values.
fn progress_set(p: &Progress) -> (&'static str, [Value; 4]) {
    (
        "cursor = ?, done_count = ?, failed_count = ?, total_count = ?",
        [p.cursor.clone().into(), p.done.into(), p.failed.into(), p.total.into()],
    )
}

async fn enqueue(tx: &mut Tx<'_>, j: &NewJob) -> Result<i64, CatalogError> {
    let row = tx
        .fetch_one(
            "job: enqueue",
            "INSERT INTO job (kind, params, state, created_at_ms, not_before_ms) VALUES (?, ?, 'queued', ?, ?) RETURNING id",
            &[j.kind.as_str().into(), j.params.as_str().into(), j.now_ms.into(), j.not_before_ms.into()],
        )
        .await?;
    row.cols().int("job id")
}

async fn record_failures(tx: &mut Tx<'_>, id: i64, failures: &[JobFailure]) -> Result<(), CatalogError> {
    for f in failures {
        tx.execute(
            "job: record failure",
            "INSERT INTO job_failure (job_id, object, reason, at_ms) VALUES (?, ?, ?, ?)",
            &[id.into(), f.object.as_str().into(), f.reason.as_str().into(), f.at_ms.into()],
        )
        .await?;
    }
    Ok(())
}

/// Applies one job write inside the writer's transaction.
pub(crate) async fn apply(tx: &mut Tx<'_>, op: &JobOp) -> Result<JobReply, CatalogError> {
    match op {
        JobOp::Enqueue(j) => Ok(JobReply::Enqueued(enqueue(tx, j).await?)),
        JobOp::EnqueueScheduled { name, slot, busy_kinds, jobs } => {
            if !busy_kinds.is_empty() {
                let mut b = SqlBuilder::new(tx.dialect());
                b.push("SELECT id FROM job WHERE kind IN ")
                    .bind_list(busy_kinds.iter().map(String::as_str))
                    .push(" AND state IN ('queued', 'running') LIMIT 1");
                if tx.fetch_optional("job: a run still going", &b.sql, &b.binds).await?.is_some() {
                    return Ok(JobReply::Scheduled(None));
                }
            }
            // One statement takes the slot: inserted, or moved forward from an earlier one. On
            // PostgreSQL a second node's statement waits for the first's row and then finds the
            // slot taken; SQLite has one writer.
            let now_ms = jobs.first().map_or(0, |j| j.now_ms);
            let took = tx
                .fetch_optional(
                    "job: take a schedule slot",
                    "INSERT INTO job_schedule (name, slot, queued_at_ms) VALUES (?, ?, ?) \
                     ON CONFLICT (name) DO UPDATE SET slot = excluded.slot, queued_at_ms = excluded.queued_at_ms \
                     WHERE job_schedule.slot < excluded.slot RETURNING slot",
                    &[name.as_str().into(), (*slot).into(), now_ms.into()],
                )
                .await?;
            if took.is_none() {
                return Ok(JobReply::Scheduled(None));
            }
            let mut ids = Vec::with_capacity(jobs.len());
            for j in jobs {
                ids.push(enqueue(tx, j).await?);
            }
            Ok(JobReply::Scheduled(Some(ids)))
        }
        JobOp::Claim { owner, kinds, now_ms, lease_ms } => {
            if kinds.is_empty() {
                return Ok(JobReply::Claimed(None));
            }
            let mut b = SqlBuilder::new(tx.dialect());
            b.push("UPDATE job SET state = 'running', lease_owner = ")
                .bind(owner.as_str())
                .push(", lease_until_ms = ")
                .bind(now_ms.saturating_add(*lease_ms))
                .push(", attempts = attempts + 1, started_at_ms = COALESCE(started_at_ms, ")
                .bind(*now_ms)
                .push(") WHERE id = (SELECT id FROM job WHERE kind IN ")
                .bind_list(kinds.iter().map(String::as_str))
                .push(" AND ((state = 'queued' AND not_before_ms <= ")
                .bind(*now_ms)
                .push(") OR (state = 'running' AND lease_until_ms < ")
                .bind(*now_ms)
                .push(")) ORDER BY id LIMIT 1");
            if tx.dialect() == Dialect::Postgres {
                b.push(" FOR UPDATE SKIP LOCKED");
            }
            b.push(&format!(") RETURNING {COLUMNS}"));
            let row = tx.fetch_optional("job: claim", &b.sql, &b.binds).await?;
            Ok(JobReply::Claimed(row.as_ref().map(decode).transpose()?.map(Box::new)))
        }
        JobOp::Renew { id, owner, now_ms, lease_ms, progress } => {
            let (set, values) = progress_set(progress);
            let mut binds = vec![now_ms.saturating_add(*lease_ms).into()];
            binds.extend(values);
            binds.extend([(*id).into(), owner.as_str().into()]);
            let sql = format!(
                "UPDATE job SET lease_until_ms = ?, {set} WHERE id = ? AND lease_owner = ? AND state = 'running' \
                 RETURNING cancel_requested"
            );
            let Some(row) = tx.fetch_optional("job: renew", &sql, &binds).await? else {
                return Ok(JobReply::Renewed(Renewal { held: false, cancel_requested: false }));
            };
            let cancel_requested = row.cols().flag("job cancel requested")?;
            record_failures(tx, *id, &progress.failures).await?;
            Ok(JobReply::Renewed(Renewal { held: true, cancel_requested }))
        }
        JobOp::Finish { id, owner, state, outcome, progress, now_ms } => {
            let (set, values) = progress_set(progress);
            let mut binds: Vec<Value> = vec![state.as_str().into(), outcome.as_str().into(), (*now_ms).into()];
            binds.extend(values);
            binds.extend([(*id).into(), owner.as_str().into()]);
            let sql = format!(
                "UPDATE job SET state = ?, outcome = ?, finished_at_ms = ?, lease_owner = NULL, lease_until_ms = NULL, {set} \
                 WHERE id = ? AND lease_owner = ? AND state = 'running'"
            );
            let held = tx.execute("job: finish", &sql, &binds).await? == 1;
            if held {
                record_failures(tx, *id, &progress.failures).await?;
            }
            Ok(JobReply::Ended(held))
        }
        JobOp::Release { id, owner, progress } => {
            let (set, values) = progress_set(progress);
            let mut binds: Vec<Value> = values.into();
            binds.extend([(*id).into(), owner.as_str().into()]);
            let sql = format!(
                "UPDATE job SET state = 'queued', lease_owner = NULL, lease_until_ms = NULL, {set} \
                 WHERE id = ? AND lease_owner = ? AND state = 'running'"
            );
            let held = tx.execute("job: release", &sql, &binds).await? == 1;
            if held {
                record_failures(tx, *id, &progress.failures).await?;
            }
            Ok(JobReply::Ended(held))
        }
        JobOp::Expire(e) => Ok(JobReply::Expired(crate::expiry::expire(tx, e).await?)),
        JobOp::MarkHold { pk, on } => Ok(JobReply::Ended(crate::expiry::mark_legal_hold(tx, *pk, *on).await?)),
        JobOp::Purged { pk, now_ms } => Ok(JobReply::Ended(crate::expiry::purged(tx, *pk, *now_ms).await?)),
        JobOp::Move(m) => Ok(JobReply::Moved(crate::expiry::move_version(tx, m).await?.map(Box::new))),
        JobOp::AddReport(r) => Ok(JobReply::Report(crate::report::add(tx, r).await?)),
        JobOp::RequestReindex { at_ms } => Ok(JobReply::Report(crate::report::request_reindex(tx, *at_ms).await?)),
        JobOp::Accessed { pks, at_ms } => {
            let mut n = 0;
            for chunk in pks.chunks(500) {
                let mut b = SqlBuilder::new(tx.dialect());
                b.push("UPDATE instance SET last_access_ms = ").bind(*at_ms).push(" WHERE pk IN ").bind_list(chunk.iter().copied());
                b.push(" AND (last_access_ms IS NULL OR last_access_ms < ").bind(*at_ms).push(")");
                n += tx.execute("access: record", &b.sql, &b.binds).await?;
            }
            Ok(JobReply::Accesses(n))
        }
        JobOp::Cancel { id, now_ms } => {
            let queued = tx
                .execute(
                    "job: cancel queued",
                    "UPDATE job SET state = 'cancelled', finished_at_ms = ?, cancel_requested = TRUE WHERE id = ? AND state = 'queued'",
                    &[(*now_ms).into(), (*id).into()],
                )
                .await?;
            if queued == 1 {
                return Ok(JobReply::Cancel(Some(JobState::Cancelled)));
            }
            tx.execute("job: cancel running", "UPDATE job SET cancel_requested = TRUE WHERE id = ? AND state = 'running'", &[(*id).into()])
                .await?;
            let row = tx.fetch_optional("job: state", "SELECT state FROM job WHERE id = ?", &[(*id).into()]).await?;
            let state = match row {
                Some(r) => Some(JobState::parse(&r.cols().text("job state")?).ok_or(CatalogError::Corrupt { what: "job state" })?),
                None => None,
            };
            Ok(JobReply::Cancel(state))
        }
    }
}

pub(crate) async fn job(pool: &Pool, id: i64) -> Result<Option<JobRow>, CatalogError> {
    let rows = pool.fetch_all("job", &format!("SELECT {COLUMNS} FROM job WHERE id = ?"), &[id.into()]).await?;
    rows.first().map(decode).transpose()
}

pub(crate) async fn jobs(pool: &Pool, q: &JobQuery) -> Result<Vec<JobRow>, CatalogError> {
    let mut b = SqlBuilder::new(pool.dialect());
    b.push(&format!("SELECT {COLUMNS} FROM job WHERE 1 = 1"));
    if let Some(s) = q.state {
        b.push(" AND state = ").bind(s.as_str());
    }
    if let Some(k) = &q.kind {
        b.push(" AND kind = ").bind(k.as_str());
    }
    if let Some(before) = q.before_id {
        b.push(" AND id < ").bind(before);
    }
    b.push(" ORDER BY id DESC");
    b.limit_offset(Some(q.limit), 0);
    pool.fetch_built("jobs", &b.sql, &b.binds).await?.iter().map(decode).collect()
}

/// The failures a job recorded, oldest first.
pub(crate) async fn job_failures(pool: &Pool, id: i64, limit: u32, offset: u32) -> Result<Vec<JobFailure>, CatalogError> {
    let mut b = SqlBuilder::new(pool.dialect());
    b.push("SELECT object, reason, at_ms FROM job_failure WHERE job_id = ").bind(id).push(" ORDER BY at_ms, object");
    b.limit_offset(Some(limit), offset);
    let rows = pool.fetch_built("job failures", &b.sql, &b.binds).await?;
    rows.iter()
        .map(|row| {
            let mut c = row.cols();
            Ok(JobFailure { object: c.text("failed object")?, reason: c.text("failure reason")?, at_ms: c.int("failure time")? })
        })
        .collect()
}
