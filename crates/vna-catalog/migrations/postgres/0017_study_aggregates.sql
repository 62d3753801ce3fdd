-- What a study-level answer says about a study's series, kept on the study row: the number of
-- series with a live instance (NumberOfStudyRelatedSeries), their modalities
-- (ModalitiesInStudy, empty ones left out) and the SOP Classes of their live instances
-- (SOPClassesInStudy), the two lists sorted bytewise, without repeats, joined by '\' (no CS
-- value or UID holds one). A study query read them from `series` and `series_count` for every
-- study of its answer. They change only when a (series, SOP Class) count starts or stops being
-- live, or a series with live instances changes modality or study, so the triggers below fire
-- rarely (their WHEN clauses keep the rest from even queuing an event) and recompute the
-- study's three values from `series_count` (0014) in one statement; a registration that adds
-- an instance to a series already counted fires none of them. `vna verify` compares them with
-- `series_count`. Keep in step with ../sqlite/0017_study_aggregates.sql.
ALTER TABLE study ADD COLUMN live_series BIGINT NOT NULL DEFAULT 0;
ALTER TABLE study ADD COLUMN modalities TEXT NOT NULL DEFAULT '';
ALTER TABLE study ADD COLUMN sop_classes TEXT NOT NULL DEFAULT '';

CREATE FUNCTION vna_study_aggregates(studies BIGINT[]) RETURNS void LANGUAGE sql AS $$
    UPDATE study st SET
        live_series = (SELECT COUNT(DISTINCT s.pk) FROM series s JOIN series_count sc ON sc.series_pk = s.pk
            WHERE s.study_pk = st.pk AND sc.live > 0),
        modalities = (SELECT COALESCE(string_agg(v, '\' ORDER BY v), '') FROM (SELECT DISTINCT s.modality COLLATE "C" AS v
            FROM series s JOIN series_count sc ON sc.series_pk = s.pk WHERE s.study_pk = st.pk AND sc.live > 0 AND s.modality <> '') m),
        sop_classes = (SELECT COALESCE(string_agg(v, '\' ORDER BY v), '') FROM (SELECT DISTINCT sc.sop_class_uid COLLATE "C" AS v
            FROM series s JOIN series_count sc ON sc.series_pk = s.pk WHERE s.study_pk = st.pk AND sc.live > 0) c)
        WHERE st.pk = ANY (studies)
$$;

SELECT vna_study_aggregates(ARRAY(SELECT pk FROM study WHERE live_instances > 0));

CREATE FUNCTION vna_series_count_aggregates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vna_study_aggregates(ARRAY(SELECT study_pk FROM series
        WHERE pk = CASE WHEN TG_OP = 'DELETE' THEN OLD.series_pk ELSE NEW.series_pk END));
    RETURN NULL;
END
$$;

CREATE TRIGGER series_count_insert_aggregates AFTER INSERT ON series_count
    FOR EACH ROW WHEN (NEW.live > 0) EXECUTE FUNCTION vna_series_count_aggregates();
CREATE TRIGGER series_count_update_aggregates AFTER UPDATE OF live ON series_count
    FOR EACH ROW WHEN ((OLD.live > 0) <> (NEW.live > 0)) EXECUTE FUNCTION vna_series_count_aggregates();
CREATE TRIGGER series_count_delete_aggregates AFTER DELETE ON series_count
    FOR EACH ROW WHEN (OLD.live > 0) EXECUTE FUNCTION vna_series_count_aggregates();

CREATE FUNCTION vna_series_changes_aggregates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vna_study_aggregates(ARRAY[OLD.study_pk, NEW.study_pk]);
    RETURN NULL;
END
$$;

CREATE TRIGGER series_changes_aggregates AFTER UPDATE OF modality, study_pk ON series
    FOR EACH ROW WHEN (NEW.modality <> OLD.modality OR NEW.study_pk <> OLD.study_pk)
    EXECUTE FUNCTION vna_series_changes_aggregates();
