-- The audit trail (DICOM PS3.15 A.5): one row per event, the patients and studies it concerns
-- beside it. Append-only: updates and deletes are refused by the database itself.
-- Keep in step with ../postgres/0005_audit.sql.

CREATE TABLE audit_event (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    -- EventID (DCM code, e.g. 110112 Query) and EventTypeCode (e.g. 110122 Login), if any.
    event_id    TEXT NOT NULL,
    event_type  TEXT,
    -- EventActionCode C, R, U, D, E; EventOutcomeIndicator 0, 4, 8, 12.
    action      TEXT NOT NULL,
    outcome     INTEGER NOT NULL,
    -- Who: the principal's id and kind, from where (network address), through which interface.
    user_id     TEXT NOT NULL,
    user_kind   TEXT NOT NULL,
    source      TEXT NOT NULL,
    interface   TEXT NOT NULL,
    -- Instances concerned (0 for a query), and what the event is about in words (no PHI).
    instances   INTEGER NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_event_at_idx ON audit_event (at_ms);
CREATE INDEX audit_event_user_idx ON audit_event (user_id, at_ms);

CREATE TABLE audit_object (
    event_seq   INTEGER NOT NULL REFERENCES audit_event (seq),
    -- 'patient' (Patient ID) or 'study' (Study Instance UID).
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL
);
CREATE INDEX audit_object_value_idx ON audit_object (kind, value);
CREATE INDEX audit_object_event_idx ON audit_object (event_seq);

CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_object_no_update BEFORE UPDATE ON audit_object BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_object_no_delete BEFORE DELETE ON audit_object BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
