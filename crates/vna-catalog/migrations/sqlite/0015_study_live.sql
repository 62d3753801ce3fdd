-- Live instances per study, kept by triggers from `series_count` (0014) and from a series that
-- moves to another study: a study query tests `live_instances > 0` on the row it reads anyway
-- instead of looking up each series of each candidate (at a million instances, a name prefix
-- matching 944 studies spent most of its time in those look-ups). Studies and series are never
-- deleted while they have instances. `vna verify` compares it with `series_count`.
-- Keep in step with ../postgres/0015_study_live.sql.
ALTER TABLE study ADD COLUMN live_instances INTEGER NOT NULL DEFAULT 0;

UPDATE study SET live_instances = (
    SELECT COALESCE(SUM(sc.live), 0) FROM series s JOIN series_count sc ON sc.series_pk = s.pk WHERE s.study_pk = study.pk
);

CREATE TRIGGER series_count_insert_study AFTER INSERT ON series_count
BEGIN
    UPDATE study SET live_instances = live_instances + NEW.live WHERE pk = (SELECT study_pk FROM series WHERE pk = NEW.series_pk);
END;

CREATE TRIGGER series_count_update_study AFTER UPDATE OF live ON series_count
BEGIN
    UPDATE study SET live_instances = live_instances + NEW.live - OLD.live
        WHERE pk = (SELECT study_pk FROM series WHERE pk = NEW.series_pk);
END;

CREATE TRIGGER series_count_delete_study AFTER DELETE ON series_count
BEGIN
    UPDATE study SET live_instances = live_instances - OLD.live WHERE pk = (SELECT study_pk FROM series WHERE pk = OLD.series_pk);
END;

CREATE TRIGGER series_moves_study AFTER UPDATE OF study_pk ON series WHEN NEW.study_pk <> OLD.study_pk
BEGIN
    UPDATE study SET live_instances = live_instances - (SELECT COALESCE(SUM(live), 0) FROM series_count WHERE series_pk = NEW.pk)
        WHERE pk = OLD.study_pk;
    UPDATE study SET live_instances = live_instances + (SELECT COALESCE(SUM(live), 0) FROM series_count WHERE series_pk = NEW.pk)
        WHERE pk = NEW.study_pk;
END;
