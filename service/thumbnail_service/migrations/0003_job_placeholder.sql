-- A ThumbHash of a succeeded job's image (imaging/placeholder.py), base64; NULL until the job
-- succeeded, and for jobs that succeeded before this column existed.
ALTER TABLE jobs ADD COLUMN placeholder text;
