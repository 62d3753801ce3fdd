-- When an instance version was last read (frames, bytes, metadata, rendered), recorded in
-- batches by each node (at most one write per instance and flush interval), for lifecycle
-- rules that count time without access (`unused_for`). NULL: not read since it arrived.
-- Keep in step with ../postgres/0009_last_access.sql.
ALTER TABLE instance ADD COLUMN last_access_ms INTEGER;
