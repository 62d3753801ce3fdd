-- Security: the tenant of each study (visibility is a condition on it in every read), API keys
-- for machines (only a hash of the secret is kept).
-- Keep in step with ../postgres/0004_security.sql.

-- 'tenant' or 'tenant/department'; studies from before tenancy belong to 'default'.
ALTER TABLE study ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
CREATE INDEX study_tenant_idx ON study (tenant);

CREATE TABLE api_key (
    id             TEXT NOT NULL PRIMARY KEY,
    -- Lower-case hex SHA-256 of the secret part (256 random bits: no slow hash needed).
    secret_sha256  TEXT NOT NULL,
    name           TEXT NOT NULL,
    -- Space-separated scopes and tenant grants ('*': every tenant).
    scopes         TEXT NOT NULL,
    tenants        TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER,
    revoked_at_ms  INTEGER
);
