-- Expiry: what an instance version was, why and when it went, for the auditor (its rows are
-- gone from `instance`), and whether its stored object has been destroyed yet: the catalog row
-- goes first, the object after it, so a crash in between leaves a tombstone to purge, never a
-- catalog row without its object. Keep in step with ../sqlite/0008_tombstone.sql.

CREATE TABLE tombstone (
    pk               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sop_uid          TEXT COLLATE "C" NOT NULL,
    study_uid        TEXT COLLATE "C" NOT NULL,
    series_uid       TEXT COLLATE "C" NOT NULL,
    tenant           TEXT COLLATE "C" NOT NULL,
    version          BIGINT NOT NULL,
    sop_class_uid    TEXT COLLATE "C" NOT NULL,
    tier             TEXT COLLATE "C" NOT NULL,
    blob_key         TEXT COLLATE "C" NOT NULL,
    blob_version_id  TEXT COLLATE "C",
    size             BIGINT NOT NULL,
    sha256           TEXT COLLATE "C" NOT NULL,
    -- Why: 'expired' (a lifecycle rule), with the rules, the policy set's hash and the
    -- rejection that preceded it, if any.
    reason           TEXT COLLATE "C" NOT NULL,
    rules            TEXT NOT NULL,
    policy_set       TEXT COLLATE "C" NOT NULL,
    rejected_code    TEXT COLLATE "C",
    at_ms            BIGINT NOT NULL,
    purged_at_ms     BIGINT
);
CREATE INDEX tombstone_sop_idx ON tombstone (sop_uid);
CREATE INDEX tombstone_study_idx ON tombstone (study_uid);
CREATE INDEX tombstone_unpurged_idx ON tombstone (pk) WHERE purged_at_ms IS NULL;
