"""Backups of a ThumbnailService and restores into a new one (`thumbnail-backup`).

A backup is a directory in an S3 bucket, `<prefix>/<id>/`:

    originals/<key>      a copy of every backed-up job's original
    thumbnails/<key>     a copy of every thumbnail object of those jobs
    jobs.jsonl.gz        one JSON line per job, its thumbnail rows nested
    manifest.json        written last: its presence is what makes the backup complete

The operator runs `thumbnail-backup create` as a Job and `thumbnail-backup restore` as an
init container of the API server (spec.bootstrap). Pure parts (layout, row codec, manifest,
retention, report) are separate from the PostgreSQL and S3 I/O.
"""
