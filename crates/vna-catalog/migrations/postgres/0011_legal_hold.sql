-- Whether a legal hold may be on an instance version's object: set before the archive places
-- one in the store and cleared after it lifts it, so that an expiry, which checks this in the
-- transaction that removes the rows (the rows locked on PostgreSQL), never removes from the
-- catalog an object a hold placed meanwhile keeps in its store. A constant default: no table
-- rewrite. Keep in step with ../sqlite/0011_legal_hold.sql.
ALTER TABLE instance ADD COLUMN legal_hold BOOLEAN NOT NULL DEFAULT FALSE;
