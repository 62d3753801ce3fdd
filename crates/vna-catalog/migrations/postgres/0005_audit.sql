-- The audit trail (DICOM PS3.15 A.5): one row per event, the patients and studies it concerns
-- beside it. Append-only: updates and deletes are refused by the database itself.
-- Keep in step with ../sqlite/0005_audit.sql.

CREATE TABLE audit_event (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    -- EventID (DCM code, e.g. 110112 Query) and EventTypeCode (e.g. 110122 Login), if any.
    event_id    TEXT COLLATE "C" NOT NULL,
    event_type  TEXT COLLATE "C",
    -- EventActionCode C, R, U, D, E; EventOutcomeIndicator 0, 4, 8, 12.
    action      TEXT COLLATE "C" NOT NULL,
    outcome     BIGINT NOT NULL,
    -- Who: the principal's id and kind, from where (network address), through which interface.
    user_id     TEXT COLLATE "C" NOT NULL,
    user_kind   TEXT COLLATE "C" NOT NULL,
    source      TEXT NOT NULL,
    interface   TEXT COLLATE "C" NOT NULL,
    -- Instances concerned (0 for a query), and what the event is about in words (no PHI).
    instances   BIGINT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_event_at_idx ON audit_event (at_ms);
CREATE INDEX audit_event_user_idx ON audit_event (user_id, at_ms);

CREATE TABLE audit_object (
    event_seq   BIGINT NOT NULL REFERENCES audit_event (seq),
    -- 'patient' (Patient ID) or 'study' (Study Instance UID).
    kind        TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL
);
CREATE INDEX audit_object_value_idx ON audit_object (kind, value);
CREATE INDEX audit_object_event_idx ON audit_object (event_seq);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_object_append_only BEFORE UPDATE OR DELETE ON audit_object
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
