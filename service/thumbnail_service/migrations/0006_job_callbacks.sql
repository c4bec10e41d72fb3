-- Completion webhooks (docs/api.md, "Completion webhooks"): the URL a job's client gave, and
-- an outbox in the job row itself. When the job finishes, callback_state becomes 'pending'
-- and callback_due_at now(); a sweeper delivers it (SKIP LOCKED: one sweeper per job), moving
-- callback_due_at forward as its lease while it tries, and records every attempt. 'delivered'
-- after a 2xx, 'failed' once the attempts are used up. A crash between the 2xx and the
-- UPDATE repeats a delivery: receivers deduplicate by the Webhook-Id header.
ALTER TABLE jobs ADD COLUMN callback_url text;
ALTER TABLE jobs ADD COLUMN callback_state text
    CHECK (callback_state IN ('pending', 'delivered', 'failed'));
ALTER TABLE jobs ADD COLUMN callback_due_at timestamptz;
CREATE INDEX jobs_callback_due_idx ON jobs (callback_due_at) WHERE callback_state = 'pending';

CREATE TABLE webhook_attempts (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status_code integer,  -- NULL: no HTTP answer (refused address, timeout, connection error)
    error text,           -- NULL after a 2xx
    PRIMARY KEY (job_id, attempt)
);
