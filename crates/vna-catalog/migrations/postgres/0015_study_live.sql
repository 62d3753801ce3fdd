-- Live instances per study, kept by triggers from `series_count` (0014) and from a series that
-- moves to another study: a study query tests `live_instances > 0` on the row it reads anyway
-- instead of looking up each series of each candidate. Studies and series are never deleted
-- while they have instances. `vna verify` compares it with `series_count`.
-- Keep in step with ../sqlite/0015_study_live.sql.
ALTER TABLE study ADD COLUMN live_instances BIGINT NOT NULL DEFAULT 0;

UPDATE study st SET live_instances = c.n
    FROM (SELECT s.study_pk, SUM(sc.live) AS n FROM series s JOIN series_count sc ON sc.series_pk = s.pk GROUP BY s.study_pk) c
    WHERE c.study_pk = st.pk;

CREATE FUNCTION vna_series_count_study() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta BIGINT;
    of_series BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        delta := NEW.live;
        of_series := NEW.series_pk;
    ELSIF TG_OP = 'UPDATE' THEN
        delta := NEW.live - OLD.live;
        of_series := NEW.series_pk;
    ELSE
        delta := -OLD.live;
        of_series := OLD.series_pk;
    END IF;
    IF delta <> 0 THEN
        UPDATE study SET live_instances = live_instances + delta WHERE pk = (SELECT study_pk FROM series WHERE pk = of_series);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER series_count_study AFTER INSERT OR DELETE OR UPDATE OF live ON series_count
    FOR EACH ROW EXECUTE FUNCTION vna_series_count_study();

CREATE FUNCTION vna_series_moves_study() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n BIGINT;
BEGIN
    SELECT COALESCE(SUM(live), 0) INTO n FROM series_count WHERE series_pk = NEW.pk;
    IF n <> 0 THEN
        UPDATE study SET live_instances = live_instances - n WHERE pk = OLD.study_pk;
        UPDATE study SET live_instances = live_instances + n WHERE pk = NEW.study_pk;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER series_moves_study AFTER UPDATE OF study_pk ON series
    FOR EACH ROW WHEN (NEW.study_pk <> OLD.study_pk) EXECUTE FUNCTION vna_series_moves_study();
