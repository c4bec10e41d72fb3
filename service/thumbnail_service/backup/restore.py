"""`thumbnail-backup restore`: a backup into the empty database and buckets of a new service.

It runs as an init container of every API server replica. The database side decides
everything, under an advisory lock held for the whole restore: one replica restores, the
others wait and then find the backup recorded in restored_backups and pass. That check comes
before the backup is even read, so a restored service keeps starting after retention has
deleted the backup it came from. Objects are copied first and the rows inserted last in one
transaction, so a restore cut short leaves no rows and is simply run again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from minio import Minio

from ..migrate import apply_migrations, load_migrations
from ..settings import Settings
from . import objects as s3
from .codec import JobObjects, count_lines, job_objects, read_lines, requeued
from .database import RESTORE_LOCK_ID, connect, count_jobs, load, now, restored
from .errors import BackupError
from .layout import Location
from .manifest import Manifest, ManifestError, parse, rfc3339
from .pool import run_all
from .progress import Progress
from .settings import BackupSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Copied:
    objects: int
    bytes: int


async def restore(settings: Settings, backup: BackupSettings) -> dict[str, Any]:
    where = Location(backup.bucket, backup.prefix, backup.id)
    conn = await connect(settings)
    try:
        await apply_migrations(conn)
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RESTORE_LOCK_ID):
            log.info("another replica is restoring into this database: waiting for it")
            await conn.execute("SELECT pg_advisory_lock($1)", RESTORE_LOCK_ID)
        # The lock goes with the session: closing the connection (or dying) releases it.
        return await _restore_locked(conn, settings, backup, where)
    finally:
        await conn.close()


async def _restore_locked(
    conn: asyncpg.Connection, settings: Settings, backup: BackupSettings, where: Location
) -> dict[str, Any]:
    recorded = await restored(conn, backup.id)
    if recorded is not None:
        log.info("backup %s is already restored in this database (%d jobs): nothing to do",
                 backup.id, recorded)
        return {"id": backup.id, "restored": "already", "jobs": recorded, "thumbnails": 0,
                "objects": 0, "bytes": 0}
    present = await count_jobs(conn)
    if present:
        raise BackupError(
            f"refusing to restore backup {backup.id}: the database already holds {present} "
            "jobs; restore into a new ThumbnailService (new volumes), or remove spec.bootstrap"
        )

    service_s3 = s3.S3Config.service(settings)
    backups_s3 = s3.S3Config.backups(settings, backup)
    server_side = service_s3.same_server(backups_s3)
    source = s3.client(backups_s3, backup.concurrency + 2)
    target = source if server_side else s3.client(service_s3, backup.concurrency + 2)
    manifest = await asyncio.to_thread(_read_manifest, source, where)
    data = await asyncio.to_thread(s3.get_bytes, source, where.bucket, where.jobs_key)
    if data is None:
        raise BackupError(f"backup {backup.id} at {where.url} is damaged: jobs.jsonl.gz missing")
    jobs, thumbnails = count_lines(data)
    if (jobs, thumbnails) != (manifest.jobs, manifest.thumbnails):
        raise BackupError(
            f"backup {backup.id} at {where.url} is damaged: jobs.jsonl.gz holds {jobs} jobs and "
            f"{thumbnails} thumbnails, its manifest says {manifest.jobs} and "
            f"{manifest.thumbnails}"
        )
    log.info("restoring backup %s (%s, %s, taken %s): %d jobs, %d thumbnails, %d objects, "
             "%.1f MB, %s", backup.id, manifest.service or "unnamed service", manifest.kind,
             rfc3339(manifest.started_at), jobs, thumbnails, manifest.objects,
             manifest.bytes / 1e6,
             "by server-side copies" if server_side else f"streamed from {backups_s3.endpoint}")

    for bucket in (settings.bucket_originals, settings.bucket_thumbnails):
        await asyncio.to_thread(s3.ensure_bucket, target, bucket)
    mover = s3.Mover(source, target, server_side=server_side)
    copy_started = time.monotonic()
    copied = await asyncio.to_thread(_copy_back, mover, settings, where, data, jobs, backup)

    # Jobs that were waiting or running are due at once: the sweeper re-enqueues them.
    restart = await now(conn)
    await load(
        conn,
        (requeued(line["job"], restart) for line in read_lines(data)),
        (t for line in read_lines(data) for t in line["thumbnails"]),
        backup_id=backup.id, job_count=jobs, source=where.url,
    )
    # A worker's sweeper deletes originals that have no row and are older than the orphan
    # grace: on a restore that long, those copied first may be gone. Rows exist now, so what
    # is put back stays.
    if time.monotonic() - copy_started > settings.orphan_grace_seconds / 2:
        await asyncio.to_thread(recopy_missing_originals, mover, settings, where, data, backup)
    log.info("backup %s restored: %d jobs, %d thumbnails, %d objects, %.1f MB",
             backup.id, jobs, thumbnails, copied.objects, copied.bytes / 1e6)
    return {"id": backup.id, "restored": True, "jobs": jobs, "thumbnails": thumbnails,
            "objects": copied.objects, "bytes": copied.bytes}


def _read_manifest(source: Minio, where: Location) -> Manifest:
    data = s3.get_bytes(source, where.bucket, where.manifest_key)
    if data is None:
        raise BackupError(
            f"no backup {where.id} at {where.url} (manifest.json missing: the backup never "
            "completed or the id/destination is wrong)"
        )
    try:
        manifest = parse(data)
    except ManifestError as exc:
        raise BackupError(f"backup {where.id} at {where.url}: {exc}") from None
    latest = max(m.version for m in load_migrations())
    if manifest.schema_version > latest:
        raise BackupError(
            f"backup {where.id} comes from schema version {manifest.schema_version}, newer than "
            f"this release's {latest}: restore it with the release that made it or a later one"
        )
    if manifest.id != where.id:
        log.warning("backup at %s calls itself %s", where.url, manifest.id)
    return manifest


def _copy_back(
    mover: s3.Mover, settings: Settings, where: Location, data: bytes, jobs: int,
    backup: BackupSettings,
) -> Copied:
    buckets = {"originals": settings.bucket_originals, "thumbnails": settings.bucket_thumbnails}

    def one(job: JobObjects) -> tuple[int, int]:
        size = 0
        for t in job.transfers:
            try:
                size += mover.copy(
                    where.bucket, where.object_key(t.kind, t.key), buckets[t.kind], t.key,
                    size=t.size, sha256=t.sha256,
                )
            except (s3.ObjectMissing, s3.ObjectMismatch) as exc:
                raise BackupError(f"backup {where.id} is damaged: job {job.job_id}: "
                                  f"{exc}") from None
        return len(job.transfers), size

    progress = Progress("restored", jobs)
    lines = (job_objects(line) for line in read_lines(data))
    for objects, size in run_all(one, lines, backup.concurrency):
        progress.add(objects, size)
    progress.finish()
    return Copied(progress.objects, progress.bytes)


def recopy_missing_originals(
    mover: s3.Mover, settings: Settings, where: Location, data: bytes, backup: BackupSettings
) -> int:
    """Copy again every original of the backup that is no longer in the target; how many."""
    bucket = settings.bucket_originals

    def one(job: JobObjects) -> int:
        original = job.transfers[0]  # job_objects puts the original first
        if s3.exists(mover.target, bucket, original.key):
            return 0
        mover.copy(where.bucket, where.object_key("originals", original.key), bucket,
                   original.key, size=original.size)
        return 1

    lines = (job_objects(line) for line in read_lines(data))
    again = sum(run_all(one, lines, backup.concurrency))
    if again:
        log.warning("copied %d original(s) again: removed as orphans during the restore", again)
    return again
