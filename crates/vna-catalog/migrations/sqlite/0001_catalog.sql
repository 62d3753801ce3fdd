-- vna catalog schema, SQLite flavour. Keep in step with ../postgres/0001_catalog.sql.
-- Every column a QIDO-RS / C-FIND key matches on has an index (see query.rs `Key`).

CREATE TABLE patient (
    pk            INTEGER PRIMARY KEY,
    patient_id    TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    -- '' normally; the study UID when patient_id is empty, so that patients without an ID are
    -- never merged into one row (which would show one patient's name on another's study).
    orphan_study  TEXT NOT NULL DEFAULT '',
    patient_name  TEXT NOT NULL,
    birth_date    TEXT NOT NULL,
    sex           TEXT NOT NULL,
    UNIQUE (patient_id, issuer, orphan_study)
);
CREATE INDEX patient_issuer_idx ON patient (issuer);
CREATE INDEX patient_name_idx ON patient (patient_name);
CREATE INDEX patient_birth_date_idx ON patient (birth_date);
CREATE INDEX patient_sex_idx ON patient (sex);

-- Folded PN words for fuzzy matching; a query word matches by prefix (range scan on token).
CREATE TABLE patient_name_token (
    token       TEXT NOT NULL,
    patient_pk  INTEGER NOT NULL REFERENCES patient (pk) ON DELETE CASCADE,
    PRIMARY KEY (token, patient_pk)
) WITHOUT ROWID;
CREATE INDEX patient_name_token_owner_idx ON patient_name_token (patient_pk);

CREATE TABLE study (
    pk                        INTEGER PRIMARY KEY,
    study_uid                 TEXT NOT NULL UNIQUE,
    patient_pk                INTEGER NOT NULL REFERENCES patient (pk),
    study_date                TEXT NOT NULL,
    study_time                TEXT NOT NULL,
    accession_number          TEXT NOT NULL,
    study_id                  TEXT NOT NULL,
    referring_physician_name  TEXT NOT NULL,
    study_description         TEXT NOT NULL
);
CREATE INDEX study_patient_idx ON study (patient_pk);
CREATE INDEX study_date_time_idx ON study (study_date DESC, study_time DESC, study_uid);
CREATE INDEX study_time_idx ON study (study_time);
CREATE INDEX study_accession_idx ON study (accession_number);
CREATE INDEX study_id_idx ON study (study_id);
CREATE INDEX study_referring_idx ON study (referring_physician_name);
CREATE INDEX study_description_idx ON study (study_description);

CREATE TABLE referring_name_token (
    token     TEXT NOT NULL,
    study_pk  INTEGER NOT NULL REFERENCES study (pk) ON DELETE CASCADE,
    PRIMARY KEY (token, study_pk)
) WITHOUT ROWID;
CREATE INDEX referring_name_token_owner_idx ON referring_name_token (study_pk);

CREATE TABLE series (
    pk                  INTEGER PRIMARY KEY,
    series_uid          TEXT NOT NULL UNIQUE,
    study_pk            INTEGER NOT NULL REFERENCES study (pk),
    modality            TEXT NOT NULL,
    series_number       INTEGER,
    series_description  TEXT NOT NULL,
    body_part_examined  TEXT NOT NULL,
    pps_start_date      TEXT NOT NULL,
    pps_start_time      TEXT NOT NULL
);
CREATE INDEX series_study_idx ON series (study_pk, series_number, series_uid);
CREATE INDEX series_modality_idx ON series (modality, study_pk);
CREATE INDEX series_number_idx ON series (series_number);
CREATE INDEX series_description_idx ON series (series_description);
CREATE INDEX series_body_part_idx ON series (body_part_examined);
CREATE INDEX series_pps_start_date_idx ON series (pps_start_date);

-- One row per stored version of a SOP instance.
CREATE TABLE instance (
    pk                   INTEGER PRIMARY KEY,
    series_pk            INTEGER NOT NULL REFERENCES series (pk),
    sop_uid              TEXT NOT NULL,
    version              INTEGER NOT NULL,
    is_current           BOOLEAN NOT NULL,
    sop_class_uid        TEXT NOT NULL,
    instance_number      INTEGER,
    n_rows               INTEGER,
    n_columns            INTEGER,
    bits_allocated       INTEGER,
    number_of_frames     INTEGER,
    transfer_syntax      TEXT NOT NULL,
    tier                 TEXT NOT NULL,
    blob_key             TEXT NOT NULL,
    blob_version_id      TEXT,
    size                 INTEGER NOT NULL,
    sha256               TEXT NOT NULL,
    -- 'none' | 'native' | 'encapsulated'; native frames are arithmetic on the next columns,
    -- encapsulated ones live in frame_piece.
    frame_kind           TEXT NOT NULL,
    frame_first_offset   INTEGER NOT NULL,
    frame_length         INTEGER NOT NULL,
    frame_count          INTEGER NOT NULL,
    stored_at_ms         INTEGER NOT NULL,
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
    instance_pk   INTEGER NOT NULL REFERENCES instance (pk) ON DELETE CASCADE,
    frame_number  INTEGER NOT NULL,
    piece_index   INTEGER NOT NULL,
    byte_offset   INTEGER NOT NULL,
    byte_length   INTEGER NOT NULL,
    PRIMARY KEY (instance_pk, frame_number, piece_index)
) WITHOUT ROWID;

CREATE TABLE instance_metadata (
    instance_pk  INTEGER PRIMARY KEY REFERENCES instance (pk) ON DELETE CASCADE,
    json         TEXT NOT NULL
);

-- AUTOINCREMENT: a seq is never reused, even after the newest row is deleted.
CREATE TABLE change_feed (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    study_uid    TEXT NOT NULL,
    series_uid   TEXT NOT NULL,
    sop_uid      TEXT NOT NULL,
    instance_pk  INTEGER NOT NULL,
    at_ms        INTEGER NOT NULL
);
