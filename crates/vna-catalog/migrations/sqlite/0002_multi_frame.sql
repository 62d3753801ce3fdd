-- Multi-frame organisation of an instance, so that a viewer finds a slide's concatenations
-- and tiled levels through QIDO-RS (and C-FIND) without reading metadata (PS3.3 §C.7.6.16,
-- §C.8.12.4: Concatenation, Dimension Organization Type, Total Pixel Matrix).
ALTER TABLE instance ADD COLUMN concatenation_uid TEXT;
ALTER TABLE instance ADD COLUMN concatenation_source TEXT;
ALTER TABLE instance ADD COLUMN in_concatenation_number INTEGER;
ALTER TABLE instance ADD COLUMN dimension_organization_type TEXT;
ALTER TABLE instance ADD COLUMN total_pixel_matrix_columns INTEGER;
ALTER TABLE instance ADD COLUMN total_pixel_matrix_rows INTEGER;
CREATE INDEX instance_concatenation_idx ON instance (concatenation_uid) WHERE concatenation_uid IS NOT NULL;
