-- How long rendering a succeeded job took in its worker (the time the worker's render
-- histogram records), so that the operator's autoscaler learns what each output format costs
-- per megapixel from the database, which outlives every worker pod (a scale to zero too).
-- NULL for jobs that succeeded before this column existed.
ALTER TABLE jobs ADD COLUMN render_seconds real;
