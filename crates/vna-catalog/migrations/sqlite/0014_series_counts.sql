-- Live instances per series and SOP Class, kept by triggers on `instance` in the transaction
-- that changes them: the study, series and patient counters of a query (NumberOfStudyRelated
-- Instances, SOPClassesInStudy, ModalitiesInStudy, …) and its "has a live instance" test read
-- a few rows here instead of every instance (at a million instances a page of 1000 studies
-- counted 60 000 index entries). "Live" is translate::live for a reader who does not see
-- rejected instances: the current version, no IOCM rejection; the triggers state it again here
-- (and only here), so every write of those columns, whoever makes it, keeps the counts true.
-- `vna verify` compares them with a count of the instances. Rows left at 0 are kept.
-- Keep in step with ../postgres/0014_series_counts.sql.
CREATE TABLE series_count (
    series_pk      INTEGER NOT NULL REFERENCES series (pk) ON DELETE CASCADE,
    sop_class_uid  TEXT NOT NULL,
    live           INTEGER NOT NULL,
    PRIMARY KEY (series_pk, sop_class_uid)
) WITHOUT ROWID;

INSERT INTO series_count (series_pk, sop_class_uid, live)
    SELECT series_pk, sop_class_uid, COUNT(*) FROM instance
    WHERE is_current AND rejected_code IS NULL GROUP BY series_pk, sop_class_uid;

CREATE TRIGGER instance_count_insert AFTER INSERT ON instance
    WHEN NEW.is_current AND NEW.rejected_code IS NULL
BEGIN
    INSERT INTO series_count (series_pk, sop_class_uid, live) VALUES (NEW.series_pk, NEW.sop_class_uid, 1)
        ON CONFLICT (series_pk, sop_class_uid) DO UPDATE SET live = live + 1;
END;

CREATE TRIGGER instance_count_delete AFTER DELETE ON instance
    WHEN OLD.is_current AND OLD.rejected_code IS NULL
BEGIN
    UPDATE series_count SET live = live - 1 WHERE series_pk = OLD.series_pk AND sop_class_uid = OLD.sop_class_uid;
END;

CREATE TRIGGER instance_count_update AFTER UPDATE OF is_current, rejected_code, series_pk, sop_class_uid ON instance
BEGIN
    UPDATE series_count SET live = live - 1
        WHERE OLD.is_current AND OLD.rejected_code IS NULL
        AND series_pk = OLD.series_pk AND sop_class_uid = OLD.sop_class_uid;
    INSERT INTO series_count (series_pk, sop_class_uid, live)
        SELECT NEW.series_pk, NEW.sop_class_uid, 1 WHERE NEW.is_current AND NEW.rejected_code IS NULL
        ON CONFLICT (series_pk, sop_class_uid) DO UPDATE SET live = live + 1;
END;
