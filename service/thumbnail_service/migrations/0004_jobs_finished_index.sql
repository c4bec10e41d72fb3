-- Recent throughput (/healthz/detailed, the operator's status) counts jobs finished in the
-- last minutes: an index on finish times makes that a short range scan, not a table scan.
CREATE INDEX jobs_finished_at_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
