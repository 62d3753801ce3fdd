-- Live instances per series and SOP Class, kept by a trigger on `instance` in the transaction
-- that changes them: the study, series and patient counters of a query and its "has a live
-- instance" test read a few rows here instead of every instance. "Live" is translate::live for
-- a reader who does not see rejected instances: the current version, no IOCM rejection; the
-- trigger states it again here (and only here). `vna verify` compares the counts with the
-- instances. Rows left at 0 are kept.
-- Keep in step with ../sqlite/0014_series_counts.sql.
CREATE TABLE series_count (
    series_pk      BIGINT NOT NULL REFERENCES series (pk) ON DELETE CASCADE,
    sop_class_uid  TEXT NOT NULL,
    live           BIGINT NOT NULL,
    PRIMARY KEY (series_pk, sop_class_uid)
);

INSERT INTO series_count (series_pk, sop_class_uid, live)
    SELECT series_pk, sop_class_uid, COUNT(*) FROM instance
    WHERE is_current AND rejected_code IS NULL GROUP BY series_pk, sop_class_uid;

CREATE FUNCTION vna_instance_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.is_current AND OLD.rejected_code IS NULL THEN
        UPDATE series_count SET live = live - 1 WHERE series_pk = OLD.series_pk AND sop_class_uid = OLD.sop_class_uid;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.is_current AND NEW.rejected_code IS NULL THEN
        INSERT INTO series_count (series_pk, sop_class_uid, live) VALUES (NEW.series_pk, NEW.sop_class_uid, 1)
            ON CONFLICT (series_pk, sop_class_uid) DO UPDATE SET live = series_count.live + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER instance_count AFTER INSERT OR DELETE OR UPDATE OF is_current, rejected_code, series_pk, sop_class_uid
    ON instance FOR EACH ROW EXECUTE FUNCTION vna_instance_count();
