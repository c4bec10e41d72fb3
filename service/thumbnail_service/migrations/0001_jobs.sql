-- Jobs are the source of truth; Redis only carries "please look at job X" messages.
CREATE TYPE job_status AS ENUM ('queued', 'processing', 'succeeded', 'failed');

CREATE TABLE jobs (
    id                  uuid PRIMARY KEY,
    status              job_status NOT NULL DEFAULT 'queued',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    attempts            integer NOT NULL DEFAULT 0,
    error               text,
    -- A retried POST with the same key returns this job; the fingerprint detects key reuse
    -- with a different request.
    idempotency_key     text UNIQUE,
    request_fingerprint text NOT NULL,
    options             jsonb NOT NULL,
    original_key        text NOT NULL,
    original_format     text NOT NULL,
    original_width      integer NOT NULL,
    original_height     integer NOT NULL,
    original_bytes      bigint NOT NULL,
    -- Queued: deadline for a worker to pick the job up; processing: the worker's lease,
    -- renewed by its heartbeat. Past it, the sweeper presumes the message lost.
    lease_expires_at    timestamptz NOT NULL DEFAULT now(),
    -- Changes on every claim so a worker that lost its lease cannot finish the job.
    lease_token         uuid
);

CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at DESC, id DESC);
CREATE INDEX jobs_unfinished_lease_idx ON jobs (lease_expires_at)
    WHERE status IN ('queued', 'processing');

CREATE TABLE thumbnails (
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name         text NOT NULL,
    width        integer NOT NULL,
    height       integer NOT NULL,
    format       text NOT NULL,
    content_type text NOT NULL,
    bytes        bigint NOT NULL,
    sha256       text NOT NULL,
    object_key   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, name)
);
