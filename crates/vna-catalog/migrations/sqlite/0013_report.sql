-- Reports sent through the API (POST /api/reports: plain text, or the text of an HL7 v2
-- ORU^R01), each linked to a study; the search indexes them with the study's SR and PDF
-- reports. A `report-added` change in the same transaction tells every node's indexer.
-- Keep in step with ../postgres/0013_report.sql.
CREATE TABLE report (
    pk              INTEGER PRIMARY KEY,
    study_uid       TEXT NOT NULL,
    -- 'text' or 'hl7'
    source          TEXT NOT NULL,
    -- ISO 639-1 code given by the sender, '' when the search detects it
    lang            TEXT NOT NULL DEFAULT '',
    body            TEXT NOT NULL,
    received_at_ms  INTEGER NOT NULL
);
CREATE INDEX report_study ON report (study_uid);
