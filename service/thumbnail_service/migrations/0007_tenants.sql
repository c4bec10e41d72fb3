-- Tenants (docs/api.md, "Tenants"): every job belongs to one, and an API key sees, lists,
-- downloads and deletes only its tenant's jobs. The keys of THUMBNAIL_API_KEYS (the
-- operator's Secret) are the 'default' tenant's; more keys are records here, created with
-- `thumbnail-admin keys`, stored as the SHA-256 of the secret only. Idempotency keys are
-- per tenant: two tenants may use the same one without meeting each other's jobs.
CREATE TABLE api_keys (
    id          text PRIMARY KEY,             -- key_<hex>: safe to show, log and label by
    tenant      text NOT NULL,
    name        text NOT NULL DEFAULT '',
    sha256      text NOT NULL UNIQUE,          -- of the secret, hex
    -- Requests per minute this key may make; NULL: THUMBNAIL_RATE_LIMIT_PER_MINUTE.
    rate_limit_per_minute integer CHECK (rate_limit_per_minute >= 0),
    -- The completion webhook of this key's submissions that name none.
    callback_url text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

ALTER TABLE jobs ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE jobs DROP CONSTRAINT jobs_idempotency_key_key;
ALTER TABLE jobs ADD CONSTRAINT jobs_tenant_idempotency_key UNIQUE (tenant, idempotency_key);
CREATE INDEX jobs_tenant_created_idx ON jobs (tenant, created_at DESC, id DESC);
