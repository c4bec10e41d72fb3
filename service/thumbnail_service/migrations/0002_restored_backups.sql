-- Backups restored into this database (thumbnail-backup restore): a replica's restore init
-- container that finds its backup here has nothing to do, which makes restores idempotent.
CREATE TABLE restored_backups (
    backup_id   text PRIMARY KEY,
    restored_at timestamptz NOT NULL DEFAULT now(),
    jobs        integer NOT NULL,
    source      text NOT NULL
);
