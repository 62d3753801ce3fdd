-- The institution and department of a series (General Equipment module, PS3.3 C.7.5.1:
-- Institution Name (0008,0080), Institutional Department Name (0008,1040)), for lifecycle
-- rules that differ by site or department. Empty for series stored before this migration
-- until one of their instances arrives again. Constant defaults: no table rewrite.
-- Keep in step with ../postgres/0012_institution.sql.
ALTER TABLE series ADD COLUMN institution_name TEXT NOT NULL DEFAULT '';
ALTER TABLE series ADD COLUMN department_name TEXT NOT NULL DEFAULT '';
