//! The catalog's one writer per process: the group commit every registration, audit event
//! and job write goes through (the registration itself is `register`).

use tokio::sync::{mpsc, oneshot};

use crate::db::{Dialect, LocalTx, Pool, Tx};
use crate::jobs::{JobOp, JobReply};
use crate::register::{register_in, Recent};
use crate::rejection::Current;
use crate::{AuditEvent, CatalogError, Durable, NewInstance, RegisterOutcome, VersionPolicy};

use crate::postgres::CHANGE_FEED_LOCK_KEY as PG_CHANGE_FEED_LOCK;

/// Group commit of registrations: every register of this process goes through one writer task,
/// which takes all the registrations waiting when it becomes free (at most [`MAX_BATCH`]) and
/// records them in one transaction, with one commit (one WAL flush) for the lot (a job that
/// fails sends the batch's jobs through again one by one). Nobody waits for a batch to fill:
/// a registration arriving at an idle writer is committed alone, so grouping happens only when commits queue up, which is exactly
/// when their flushes are the bottleneck. Nothing is answered before the commit that holds it
/// returns; if that commit fails, every registration of the batch gets the error.
///
/// Why a single writer rather than one transaction per caller: SQLite has one writer at a time,
/// and losers of `BEGIN IMMEDIATE` sleep in its busy handler (1, 2, 5, 10… ms), which made that
/// sleep the largest part of a small store's latency under 4 concurrent clients. On PostgreSQL
/// the change-feed lock serialises writers anyway; the batch takes it first, before any
/// per-SOP lock, so two nodes' batches cannot deadlock on each other.
pub(crate) struct Registrar {
    jobs: mpsc::Sender<Job>,
}

/// Registrations recorded in one transaction, at most.
pub(crate) const MAX_BATCH: usize = 64;

/// The writes the one writer knows: a closed set, each recorded in the batch's transaction.
enum Job {
    /// A new instance version, with the audit event of its store.
    Register {
        new: Box<NewInstance>,
        policy: VersionPolicy,
        /// The object's flush, waited for before the commit.
        durable: Durable,
        reply: oneshot::Sender<Result<RegisterOutcome, CatalogError>>,
    },
    /// Audit events of operations that write nothing else (queries, retrievals, refusals).
    Audit { events: Vec<AuditEvent>, reply: oneshot::Sender<Result<(), CatalogError>> },
    /// A background job's write: enqueue, claim, renew, finish, release, cancel.
    Op { op: JobOp, reply: oneshot::Sender<Result<JobReply, CatalogError>> },
}

impl Job {
    fn fail(self, e: CatalogError) {
        match self {
            Job::Register { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Job::Audit { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Job::Op { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// Where the writer's transactions come from.
enum Writer {
    /// PostgreSQL, or an in-memory SQLite database (one connection, shared with readers).
    Pool(Pool),
    /// The SQLite file's own write connection, used from the writer's thread only.
    Local(rusqlite::Connection),
}

impl Writer {
    async fn begin(&mut self) -> Result<Tx<'_>, CatalogError> {
        match self {
            Writer::Pool(pool) => pool.begin_batch(&format!("SELECT pg_advisory_xact_lock({PG_CHANGE_FEED_LOCK})")).await,
            Writer::Local(conn) => LocalTx::begin(conn).map(Tx::Local),
        }
    }
}

impl Registrar {
    /// Starts the writer task on the current Tokio runtime, over the pool's connections. It
    /// ends when the catalog (the last sender) is dropped.
    pub(crate) fn start(pool: Pool) -> Registrar {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(Writer::Pool(pool), rx));
        Registrar { jobs }
    }

    /// Starts the writer on a thread of its own with its own connection to the SQLite file.
    /// SQLx runs each statement on a connection thread and hands the result back, twice a
    /// thread hand-off per statement: profiled, that was 1.4 ms of the writer's time for each
    /// stored instance. Here a batch runs start to end on one thread: every future of a local
    /// transaction is ready at once, so nothing blocks the thread but SQLite itself and the wait
    /// for the next registration.
    pub(crate) fn start_local(conn: rusqlite::Connection) -> Result<Registrar, CatalogError> {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("catalog-writer".into())
            .spawn(move || futures::executor::block_on(run(Writer::Local(conn), rx)))
            .map_err(|_| CatalogError::WriterGone)?;
        Ok(Registrar { jobs })
    }

    pub(crate) async fn register(
        &self,
        new: &NewInstance,
        policy: VersionPolicy,
        durable: Durable,
    ) -> Result<RegisterOutcome, CatalogError> {
        let (reply, outcome) = oneshot::channel();
        self.jobs.send(Job::Register { new: Box::new(new.clone()), policy, durable, reply }).await.map_err(|_| CatalogError::WriterGone)?;
        outcome.await.unwrap_or(Err(CatalogError::WriterGone))
    }

    /// A job write in the next group commit; returns its answer once committed.
    pub(crate) async fn job(&self, op: JobOp) -> Result<JobReply, CatalogError> {
        let (reply, done) = oneshot::channel();
        self.jobs.send(Job::Op { op, reply }).await.map_err(|_| CatalogError::WriterGone)?;
        done.await.unwrap_or(Err(CatalogError::WriterGone))
    }

    /// Appends audit events in the next group commit; returns once they are committed.
    pub(crate) async fn audit(&self, events: Vec<AuditEvent>) -> Result<(), CatalogError> {
        if events.is_empty() {
            return Ok(());
        }
        let (reply, done) = oneshot::channel();
        self.jobs.send(Job::Audit { events, reply }).await.map_err(|_| CatalogError::WriterGone)?;
        done.await.unwrap_or(Err(CatalogError::WriterGone))
    }
}

/// The writer: every registration queued when it becomes free, as one batch, until the catalog
/// is dropped.
async fn run(mut writer: Writer, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut kept = Kept::default();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        record_batch(&mut writer, std::mem::take(&mut batch), &mut kept).await;
    }
}

/// What the writer keeps from one committed batch to the next: the rows its recent
/// registrations upserted ([`Recent`]). Images of a few series arriving one by one over as
/// many associations, each its own batch, then upsert their patient, study and series once,
/// not once each: those
/// upserts rewrote the rows, their indexes and the name tokens every time (and cost six round
/// trips on PostgreSQL). Valid while nobody else wrote since:
/// - SQLite: `PRAGMA data_version` unchanged (our own commits do not change it);
/// - PostgreSQL: the change feed's head is still the one our last batch left. Patient, study
///   and series rows change only in registrations and jobs, each appending to the change feed
///   under the lock every batch of every node holds; a batch with a job keeps nothing.
#[derive(Default)]
struct Kept {
    upserted: Recent,
    data_version: Option<i64>,
    feed_head: Option<i64>,
}

/// PostgreSQL: what the batch's look-up (`rejection::head_and_current`, after the lock) read
/// for each registration, by job, and whether it still holds. A registration's read holds until
/// the batch writes to its SOP Instance UID or may have: an earlier registration of the same
/// UID, a job, a rejection note. Empty on SQLite: each registration reads for itself.
#[derive(Default)]
struct Known<'a> {
    by_job: Vec<Option<Current>>,
    stale: bool,
    seen: std::collections::HashSet<&'a str>,
}

impl<'a> Known<'a> {
    /// What was read for job `n`, registering `new`, if it still holds.
    fn take(&mut self, n: usize, new: &'a NewInstance) -> Option<Current> {
        let first_of_uid = self.seen.insert(new.instance.sop_uid.as_str());
        let read = if self.stale || !first_of_uid { None } else { self.by_job.get_mut(n).and_then(Option::take) };
        // A note hides the instances it names, which later registrations of the batch may be.
        self.stale |= new.rejects.is_some();
        read
    }
}

/// What one job came to in its batch's transaction, answered once the batch commits.
enum Outcome {
    Register(Box<RegisterOutcome>),
    Audit,
    Op(JobReply),
}

/// Why a batch's transaction ended without committing.
enum Unrecorded {
    /// One job failed: the transaction was rolled back, and the other jobs of the batch may
    /// well succeed without it.
    Job(CatalogError),
    /// The transaction itself failed: nothing of the batch is recorded.
    Batch(CatalogError),
}

/// Records one batch and answers every job in it. Jobs run without savepoints (a savepoint
/// journals every page a job changes on SQLite, and costs two round trips per job on
/// PostgreSQL); when one job fails, the batch is rolled back and every job of it runs again
/// alone, so a failure stays its own job's.
async fn record_batch(writer: &mut Writer, jobs: Vec<Job>, kept: &mut Kept) {
    match write_batch(writer, &jobs, kept).await {
        Ok(outcomes) => answer(jobs, outcomes),
        Err(Unrecorded::Job(e)) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                job.fail(e);
            }
        }
        Err(Unrecorded::Job(_)) => {
            for job in jobs {
                match write_batch(writer, std::slice::from_ref(&job), kept).await {
                    Ok(outcomes) => answer(vec![job], outcomes),
                    Err(Unrecorded::Job(e)) => job.fail(e),
                    Err(Unrecorded::Batch(e)) => job.fail(CatalogError::Batch(batch_failed(e))),
                }
            }
        }
        Err(Unrecorded::Batch(e)) => {
            let e = batch_failed(e);
            jobs.into_iter().for_each(|job| job.fail(CatalogError::Batch(e.clone())));
        }
    }
}

/// A failed transaction: logged once, its cause shared by every job of the batch.
fn batch_failed(e: CatalogError) -> std::sync::Arc<CatalogError> {
    tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "a catalog group commit failed");
    std::sync::Arc::new(e)
}

fn answer(jobs: Vec<Job>, outcomes: Vec<Outcome>) {
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        match (job, outcome) {
            (Job::Register { reply, .. }, Outcome::Register(o)) => {
                let _ = reply.send(Ok(*o));
            }
            (Job::Audit { reply, .. }, Outcome::Audit) => {
                let _ = reply.send(Ok(()));
            }
            (Job::Op { reply, .. }, Outcome::Op(a)) => {
                let _ = reply.send(Ok(a));
            }
            (job, _) => job.fail(CatalogError::Corrupt { what: "a batch's outcomes out of order" }),
        }
    }
}

/// Runs `jobs` in one transaction and commits it; the outcome of each, in order.
async fn write_batch(writer: &mut Writer, jobs: &[Job], kept: &mut Kept) -> Result<Vec<Outcome>, Unrecorded> {
    let mut carried = std::mem::take(&mut kept.upserted);
    // PostgreSQL: the feed's head at the start, the highest seq this batch appended, and
    // whether a job ran (its appends are not counted: nothing is kept after it).
    let (mut feed_head, mut appended, mut had_job) = (None::<i64>, None::<i64>, false);
    let result = async {
        let batch = Unrecorded::Batch;
        let mut tx = writer.begin().await.map_err(batch)?;
        let mut last = Recent::default();
        if tx.dialect() == Dialect::Sqlite {
            let row = tx.fetch_one("register: data version", "PRAGMA data_version", &[]).await.map_err(batch)?;
            let version = row.cols().int("data version").map_err(batch)?;
            if kept.data_version == Some(version) {
                last = std::mem::take(&mut carried);
            }
            kept.data_version = Some(version);
        }
        let mut known = Known::default();
        if tx.dialect() == Dialect::Postgres {
            // The change-feed lock, taken with `BEGIN` (`Writer::begin`), is held to commit by
            // every batch of every node: batches are serial, so registers of one SOP UID (even
            // the first, with no row to lock) are too, and the next batch draws its change-feed
            // seqs only after ours are visible (a follower reading `seq > last` never skips a
            // row that commits later). SQLite: `BEGIN IMMEDIATE`. The head is read by a
            // statement of its own, after the lock: its snapshot sees every batch before ours.
            let news: Vec<&NewInstance> = jobs
                .iter()
                .filter_map(|job| match job {
                    Job::Register { new, .. } => Some(&**new),
                    _ => None,
                })
                .collect();
            let (head, current) = crate::rejection::head_and_current(&mut tx, &news).await.map_err(batch)?;
            if kept.feed_head == Some(head) {
                last = std::mem::take(&mut carried);
            }
            kept.feed_head = None;
            feed_head = Some(head);
            let mut current = current.into_iter();
            known.by_job =
                jobs.iter().map(|job| if matches!(job, Job::Register { .. }) { current.next().flatten() } else { None }).collect();
        }
        let mut wrote = false;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for (n, job) in jobs.iter().enumerate() {
            let failed = match job {
                Job::Audit { events, .. } => {
                    for e in events {
                        crate::audit::insert(&mut tx, e).await.map_err(batch)?;
                    }
                    wrote = true;
                    outcomes.push(Outcome::Audit);
                    continue;
                }
                Job::Op { op, .. } => {
                    // It may change or remove the rows `last` names.
                    last = Recent::default();
                    had_job = true;
                    known.stale = true;
                    match crate::jobs::apply(&mut tx, op).await {
                        Ok(answer) => {
                            wrote = true;
                            outcomes.push(Outcome::Op(answer));
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Job::Register { new, policy, .. } => match register_in(&mut tx, new, *policy, &last, known.take(n, new)).await {
                    Ok((outcome, upserted, audited)) => {
                        if let Some(upserted) = upserted {
                            wrote = true;
                            last.record(upserted);
                        }
                        if let RegisterOutcome::Stored { change_seq, .. } | RegisterOutcome::StoredAsPriorVersion { change_seq, .. } =
                            &outcome
                        {
                            appended = appended.max(Some(*change_seq));
                        }
                        // The store's event, in the same transaction: committed with it or not
                        // at all. A store the catalog refused is recorded as a minor failure
                        // (PS3.15 A.5.3.4).
                        if let Some(mut e) = new.audit.clone().filter(|_| !audited) {
                            if matches!(outcome, RegisterOutcome::Conflict { .. } | RegisterOutcome::TenantConflict) {
                                e.outcome = 4;
                            }
                            crate::audit::insert(&mut tx, &e).await.map_err(batch)?;
                            wrote = true;
                        }
                        outcomes.push(Outcome::Register(Box::new(outcome)));
                        continue;
                    }
                    Err(e) => e,
                },
            };
            // The job may have written part of itself: nothing of the batch is kept.
            let _ = tx.rollback().await;
            return Err(Unrecorded::Job(failed));
        }
        if wrote {
            // Every object a row of this batch names is durable before the row is: the
            // flushes ran beside the statements, the commit waits for them.
            for job in jobs {
                if let Job::Register { durable, .. } = job {
                    if let Err(cause) = durable.wait().await {
                        let _ = tx.rollback().await;
                        return Err(Unrecorded::Job(CatalogError::Unflushed(cause)));
                    }
                }
            }
            tx.commit().await.map_err(batch)?;
            kept.upserted = last;
            kept.feed_head = if had_job { None } else { feed_head.max(appended) };
        } else {
            // Nothing written (duplicates, conflicts): what the batch started with still holds.
            tx.rollback().await.map_err(batch)?;
            kept.upserted = last;
            kept.feed_head = feed_head;
        }
        Ok(outcomes)
    }
    .await;
    if result.is_err() {
        kept.upserted = Recent::default();
        kept.feed_head = None;
    }
    result
}
