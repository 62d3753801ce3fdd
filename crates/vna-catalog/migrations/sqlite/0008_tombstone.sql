-- Expiry: what an instance version was, why and when it went, for the auditor (its rows are
-- gone from `instance`), and whether its stored object has been destroyed yet: the catalog row
-- goes first, the object after it, so a crash in between leaves a tombstone to purge, never a
-- catalog row without its object. Keep in step with ../postgres/0008_tombstone.sql.

CREATE TABLE tombstone (
    pk               INTEGER PRIMARY KEY AUTOINCREMENT,
    sop_uid          TEXT NOT NULL,
    study_uid        TEXT NOT NULL,
    series_uid       TEXT NOT NULL,
    tenant           TEXT NOT NULL,
    version          INTEGER NOT NULL,
    sop_class_uid    TEXT NOT NULL,
    tier             TEXT NOT NULL,
    blob_key         TEXT NOT NULL,
    blob_version_id  TEXT,
    size             INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    -- Why: 'expired' (a lifecycle rule), with the rules, the policy set's hash and the
    -- rejection that preceded it, if any.
    reason           TEXT NOT NULL,
    rules            TEXT NOT NULL,
    policy_set       TEXT NOT NULL,
    rejected_code    TEXT,
    at_ms            INTEGER NOT NULL,
    purged_at_ms     INTEGER
);
CREATE INDEX tombstone_sop_idx ON tombstone (sop_uid);
CREATE INDEX tombstone_study_idx ON tombstone (study_uid);
CREATE INDEX tombstone_unpurged_idx ON tombstone (pk) WHERE purged_at_ms IS NULL;
