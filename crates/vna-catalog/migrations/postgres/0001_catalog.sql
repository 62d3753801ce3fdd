-- vna catalog schema, PostgreSQL flavour. Keep in step with ../sqlite/0001_catalog.sql.
-- Text columns use the "C" collation: byte-order comparison like SQLite's BINARY, so ordering is
-- the same in both backends and btree indexes serve LIKE prefixes and token range scans.
-- Every column a QIDO-RS / C-FIND key matches on has an index (see query.rs `Key`).

CREATE TABLE patient (
    pk            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id    TEXT COLLATE "C" NOT NULL,
    issuer        TEXT COLLATE "C" NOT NULL,
    -- '' normally; the study UID when patient_id is empty, so that patients without an ID are
    -- never merged into one row (which would show one patient's name on another's study).
    orphan_study  TEXT COLLATE "C" NOT NULL DEFAULT '',
    patient_name  TEXT COLLATE "C" NOT NULL,
    birth_date    TEXT COLLATE "C" NOT NULL,
    sex           TEXT COLLATE "C" NOT NULL,
    UNIQUE (patient_id, issuer, orphan_study)
);
CREATE INDEX patient_issuer_idx ON patient (issuer);
CREATE INDEX patient_name_idx ON patient (patient_name);
CREATE INDEX patient_birth_date_idx ON patient (birth_date);
CREATE INDEX patient_sex_idx ON patient (sex);

-- Folded PN words for fuzzy matching; a query word matches by prefix (range scan on token).
CREATE TABLE patient_name_token (
    token       TEXT COLLATE "C" NOT NULL,
    patient_pk  BIGINT NOT NULL REFERENCES patient (pk) ON DELETE CASCADE,
    PRIMARY KEY (token, patient_pk)
);
CREATE INDEX patient_name_token_owner_idx ON patient_name_token (patient_pk);

CREATE TABLE study (
    pk                        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study_uid                 TEXT COLLATE "C" NOT NULL UNIQUE,
    patient_pk                BIGINT NOT NULL REFERENCES patient (pk),
    study_date                TEXT COLLATE "C" NOT NULL,
    study_time                TEXT COLLATE "C" NOT NULL,
    accession_number          TEXT COLLATE "C" NOT NULL,
    study_id                  TEXT COLLATE "C" NOT NULL,
    referring_physician_name  TEXT COLLATE "C" NOT NULL,
    study_description         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX study_patient_idx ON study (patient_pk);
CREATE INDEX study_date_time_idx ON study (study_date DESC, study_time DESC, study_uid);
CREATE INDEX study_time_idx ON study (study_time);
CREATE INDEX study_accession_idx ON study (accession_number);
CREATE INDEX study_id_idx ON study (study_id);
CREATE INDEX study_referring_idx ON study (referring_physician_name);
CREATE INDEX study_description_idx ON study (study_description);

CREATE TABLE referring_name_token (
    token     TEXT COLLATE "C" NOT NULL,
    study_pk  BIGINT NOT NULL REFERENCES study (pk) ON DELETE CASCADE,
    PRIMARY KEY (token, study_pk)
);
CREATE INDEX referring_name_token_owner_idx ON referring_name_token (study_pk);

CREATE TABLE series (
    pk                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_uid          TEXT COLLATE "C" NOT NULL UNIQUE,
    study_pk            BIGINT NOT NULL REFERENCES study (pk),
    modality            TEXT COLLATE "C" NOT NULL,
    series_number       BIGINT,
    series_description  TEXT COLLATE "C" NOT NULL,
    body_part_examined  TEXT COLLATE "C" NOT NULL,
    pps_start_date      TEXT COLLATE "C" NOT NULL,
    pps_start_time      TEXT COLLATE "C" NOT NULL
);
CREATE INDEX series_study_idx ON series (study_pk, series_number, series_uid);
CREATE INDEX series_modality_idx ON series (modality, study_pk);
CREATE INDEX series_number_idx ON series (series_number);
CREATE INDEX series_description_idx ON series (series_description);
CREATE INDEX series_body_part_idx ON series (body_part_examined);
CREATE INDEX series_pps_start_date_idx ON series (pps_start_date);

-- One row per stored version of a SOP instance.
CREATE TABLE instance (
    pk                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_pk            BIGINT NOT NULL REFERENCES series (pk),
    sop_uid              TEXT COLLATE "C" NOT NULL,
    version              BIGINT NOT NULL,
    is_current           BOOLEAN NOT NULL,
    sop_class_uid        TEXT COLLATE "C" NOT NULL,
    instance_number      BIGINT,
    n_rows               BIGINT,
    n_columns            BIGINT,
    bits_allocated       BIGINT,
    number_of_frames     BIGINT,
    transfer_syntax      TEXT COLLATE "C" NOT NULL,
    tier                 TEXT COLLATE "C" NOT NULL,
    blob_key             TEXT COLLATE "C" NOT NULL,
    blob_version_id      TEXT COLLATE "C",
    size                 BIGINT NOT NULL,
    sha256               TEXT COLLATE "C" NOT NULL,
    -- 'none' | 'native' | 'encapsulated'; native frames are arithmetic on the next columns,
    -- encapsulated ones live in frame_piece.
    frame_kind           TEXT COLLATE "C" NOT NULL,
    frame_first_offset   BIGINT NOT NULL,
    frame_length         BIGINT NOT NULL,
    frame_count          BIGINT NOT NULL,
    stored_at_ms         BIGINT NOT NULL,
    UNIQUE (sop_uid, version)
);
-- The database itself guarantees at most one current version per SOP Instance UID.
CREATE UNIQUE INDEX instance_current_uidx ON instance (sop_uid) WHERE is_current;
CREATE INDEX instance_series_current_idx ON instance (series_pk, instance_number, sop_uid) WHERE is_current;
-- Not partial: a partial index looks to SQLite's planner like a cheap list of all current
-- instances, and it would scan it instead of starting from a selective patient/study key.
CREATE INDEX instance_sop_class_idx ON instance (sop_class_uid);
CREATE INDEX instance_number_idx ON instance (instance_number);

CREATE TABLE frame_piece (
    instance_pk   BIGINT NOT NULL REFERENCES instance (pk) ON DELETE CASCADE,
    frame_number  BIGINT NOT NULL,
    piece_index   BIGINT NOT NULL,
    byte_offset   BIGINT NOT NULL,
    byte_length   BIGINT NOT NULL,
    PRIMARY KEY (instance_pk, frame_number, piece_index)
);

CREATE TABLE instance_metadata (
    instance_pk  BIGINT PRIMARY KEY REFERENCES instance (pk) ON DELETE CASCADE,
    json         TEXT NOT NULL
);

-- Sequence values are handed out before commit; writers take a transaction-level advisory lock
-- just before inserting here so that seq order is commit order (see register.rs).
CREATE TABLE change_feed (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT COLLATE "C" NOT NULL,
    study_uid    TEXT COLLATE "C" NOT NULL,
    series_uid   TEXT COLLATE "C" NOT NULL,
    sop_uid      TEXT COLLATE "C" NOT NULL,
    instance_pk  BIGINT NOT NULL,
    at_ms        BIGINT NOT NULL
);
