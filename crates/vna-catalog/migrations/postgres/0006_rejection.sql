-- IHE IOCM rejection notes (a Key Object Selection titled 113001, 113037, 113038 or 113039):
-- what each rejected, kept even for instances not received yet, and on each instance version
-- the rejection that hides it (the liveness predicate, translate::live, tests the column).
-- Keep in step with ../sqlite/0006_rejection.sql.

ALTER TABLE instance ADD COLUMN rejected_code TEXT COLLATE "C";
ALTER TABLE instance ADD COLUMN rejected_at_ms BIGINT;

-- One row per rejected SOP Instance UID and tenant: the first rejection note that named it
-- wins. An instance that arrives later is hidden on arrival when its study and tenant are the
-- ones named.
CREATE TABLE rejection (
    sop_uid       TEXT COLLATE "C" NOT NULL,
    study_uid     TEXT COLLATE "C" NOT NULL,
    series_uid    TEXT COLLATE "C" NOT NULL,
    -- The tenant of the rejection note's study: a note rejects nothing in another tenant.
    tenant        TEXT COLLATE "C" NOT NULL,
    -- The note's title (CID 7011): 113001, 113037, 113038, 113039.
    code          TEXT COLLATE "C" NOT NULL,
    note_sop_uid  TEXT COLLATE "C" NOT NULL,
    at_ms         BIGINT NOT NULL,
    PRIMARY KEY (sop_uid, tenant)
);
CREATE INDEX rejection_at_idx ON rejection (at_ms);

-- The study and series counters see live instances only; the counters' partial index says so,
-- so that it still covers their queries.
DROP INDEX instance_series_class_current_idx;
CREATE INDEX instance_series_class_live_idx ON instance (series_pk, sop_class_uid, is_current)
    WHERE is_current AND rejected_code IS NULL;
