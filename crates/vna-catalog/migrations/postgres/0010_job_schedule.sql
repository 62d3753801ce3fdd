-- Runs that nodes queue on a schedule (the lifecycle's periodic apply): the last slot queued
-- per schedule, so that of all the nodes that see a slot come, exactly one queues its run.
-- Keep in step with ../sqlite/0010_job_schedule.sql.
CREATE TABLE job_schedule (
    name          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- The period's number (time / period) of the last run queued.
    slot          BIGINT NOT NULL,
    queued_at_ms  BIGINT NOT NULL
);
