-- Study and series counters (NumberOfStudyRelatedInstances, SOPClassesInStudy, …) group the
-- current instances of each series by SOP Class. With this index (is_current included so that
-- the partial index covers the query) that is an index-only scan;
-- without it every instance's table row was read, about 0.3 ms per study in a QIDO-RS answer
-- at a million instances.
CREATE INDEX instance_series_class_current_idx ON instance (series_pk, sop_class_uid, is_current) WHERE is_current;
