-- Background jobs (lifecycle, later migration and reindexing): work any node may claim, held by
-- a lease that a live node renews and a dead node's lets lapse, so another node takes it over
-- from its last recorded cursor. Keep in step with ../postgres/0007_jobs.sql.

CREATE TABLE job (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    -- What to run ('lifecycle-apply', …) and its parameters (JSON, opaque to the catalog).
    kind              TEXT NOT NULL,
    params            TEXT NOT NULL,
    -- 'queued' | 'running' | 'done' | 'failed' | 'cancelled'.
    state             TEXT NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    -- Not claimed before this time (a scheduled or retried job).
    not_before_ms     INTEGER NOT NULL,
    started_at_ms     INTEGER,
    finished_at_ms    INTEGER,
    -- Who holds it, until when: a running job whose lease has lapsed may be claimed again.
    lease_owner       TEXT,
    lease_until_ms    INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    -- Where a resumed run continues (opaque to the catalog), and how far it got.
    cursor            TEXT,
    done_count        INTEGER NOT NULL DEFAULT 0,
    failed_count      INTEGER NOT NULL DEFAULT 0,
    total_count       INTEGER,
    -- The outcome when finished: a JSON summary, or why it failed.
    outcome           TEXT
);
CREATE INDEX job_claim_idx ON job (state, not_before_ms, id);

-- Objects a job could not handle, with why (a stale location, a store's refusal): the job goes
-- on, a later pass retries them.
CREATE TABLE job_failure (
    job_id  INTEGER NOT NULL REFERENCES job (id),
    object  TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX job_failure_job_idx ON job_failure (job_id, at_ms);
