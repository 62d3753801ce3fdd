-- Multi-frame organisation of an instance, so that a viewer finds a slide's concatenations
-- and tiled levels through QIDO-RS (and C-FIND) without reading metadata (PS3.3 §C.7.6.16,
-- §C.8.12.4: Concatenation, Dimension Organization Type, Total Pixel Matrix).
ALTER TABLE instance ADD COLUMN concatenation_uid TEXT;
ALTER TABLE instance ADD COLUMN concatenation_source TEXT;
ALTER TABLE instance ADD COLUMN in_concatenation_number INTEGER;
ALTER TABLE instance ADD COLUMN dimension_organization_type TEXT;
ALTER TABLE instance ADD COLUMN total_pixel_matrix_columns INTEGER;
ALTER TABLE instance ADD COLUMN total_pixel_matrix_rows INTEGER;
-- Partial indexes: most instances have none of these, so the indexes stay small; an equality
-- or range on a column implies it is not null, so the planners use them.
CREATE INDEX instance_concatenation_idx ON instance (concatenation_uid) WHERE concatenation_uid IS NOT NULL;
CREATE INDEX instance_concatenation_source_idx ON instance (concatenation_source) WHERE concatenation_source IS NOT NULL;
CREATE INDEX instance_in_concatenation_idx ON instance (in_concatenation_number) WHERE in_concatenation_number IS NOT NULL;
CREATE INDEX instance_dimension_organization_idx ON instance (dimension_organization_type) WHERE dimension_organization_type IS NOT NULL;
CREATE INDEX instance_matrix_columns_idx ON instance (total_pixel_matrix_columns) WHERE total_pixel_matrix_columns IS NOT NULL;
CREATE INDEX instance_matrix_rows_idx ON instance (total_pixel_matrix_rows) WHERE total_pixel_matrix_rows IS NOT NULL;
