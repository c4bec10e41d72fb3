"""`thumbnail-backup create`: rows from one snapshot, their objects, then the manifest.

Order matters: the rows are read first (one consistent snapshot), their objects copied next,
and a job whose original or thumbnail object turns out missing (deleted while we copied, or
never uploaded) is left out rather than restored half. jobs.jsonl.gz then holds exactly the
jobs whose every object is in the backup, and manifest.json, written last, makes the backup
complete: a crash anywhere before leaves a directory no restore accepts.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from minio import Minio

from ..settings import Settings
from . import objects as s3
from .codec import JobObjects, job_objects, read_lines, without_jobs
from .database import Snapshot, connect, snapshot
from .errors import BackupError, describe
from .layout import Location
from .manifest import Manifest, ManifestError, dump, parse, rfc3339
from .pool import run_all
from .progress import Progress
from .retention import select_pruned
from .settings import ID_PATTERN, BackupSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    job_id: str
    objects: int
    bytes: int
    missing: str | None  # why the job is left out


@dataclass
class Copied:
    objects: int = 0
    bytes: int = 0
    skipped: set[str] = field(default_factory=set)


async def create(settings: Settings, backup: BackupSettings) -> dict[str, Any]:
    started = datetime.now(UTC)
    where = Location(backup.bucket, backup.prefix, backup.id)
    service_s3 = s3.S3Config.service(settings)
    backups_s3 = s3.S3Config.backups(settings, backup)
    server_side = service_s3.same_server(backups_s3)
    source = s3.client(service_s3, backup.concurrency + 2)
    target = source if server_side else s3.client(backups_s3, backup.concurrency + 2)
    mover = s3.Mover(source, target, server_side=server_side)

    for bucket in (settings.bucket_originals, settings.bucket_thumbnails):
        if not await asyncio.to_thread(source.bucket_exists, bucket):
            raise BackupError(f"the service's bucket {bucket} does not exist on "
                              f"{service_s3.endpoint}: check THUMBNAIL_BUCKET_*")
    await asyncio.to_thread(s3.ensure_bucket, target, where.bucket)
    await asyncio.to_thread(_refuse_existing, target, where)
    conn = await connect(settings)
    try:
        snap = await snapshot(conn)
    finally:
        await conn.close()
    log.info(
        "backup %s: snapshot of %d jobs, %d thumbnails (schema version %d); copying to %s %s",
        backup.id, snap.job_count, snap.thumbnail_count, snap.schema_version, where.url,
        "by server-side copies" if server_side else f"on {backups_s3.endpoint}, streamed",
    )
    copied = await asyncio.to_thread(_copy_objects, mover, settings, where, snap, backup)
    jobs_file, jobs, thumbnails = without_jobs(snap.jobs, copied.skipped)
    await asyncio.to_thread(
        s3.put_bytes, target, where.bucket, where.jobs_key, jobs_file, "application/gzip"
    )
    manifest = Manifest(
        id=backup.id, service=backup.service,
        kind="scheduled" if backup.scheduled else "on-demand",
        started_at=started, finished_at=datetime.now(UTC),
        schema_version=snap.schema_version, jobs=jobs, thumbnails=thumbnails,
        objects=copied.objects, bytes=copied.bytes, skipped=len(copied.skipped),
    )
    # Again: another run with this id may have finished meanwhile; never overwrite it.
    await asyncio.to_thread(_refuse_existing, target, where)
    await asyncio.to_thread(
        s3.put_bytes, target, where.bucket, where.manifest_key, dump(manifest),
        "application/json",
    )
    log.info("backup %s complete at %s: %d jobs, %d thumbnails, %d objects, %.1f MB, "
             "%d skipped", backup.id, where.url, jobs, thumbnails, copied.objects,
             copied.bytes / 1e6, len(copied.skipped))

    report: dict[str, Any] = {
        "id": backup.id, "jobs": jobs, "thumbnails": thumbnails, "objects": copied.objects,
        "bytes": copied.bytes, "skipped": len(copied.skipped),
        "startedAt": rfc3339(manifest.started_at), "finishedAt": rfc3339(manifest.finished_at),
        "pruned": [],
    }
    if backup.retention_count or backup.retention_max_age_seconds:
        try:
            await asyncio.to_thread(_prune, target, where, backup, report["pruned"])
        except Exception as exc:  # the backup itself is complete: report, do not fail it
            log.error("backup %s: retention failed: %s", backup.id, describe(exc))
            report["pruneError"] = describe(exc)
    return report


def _refuse_existing(target: Minio, where: Location) -> None:
    if s3.exists(target, where.bucket, where.manifest_key):
        raise BackupError(f"backup {where.id} already exists at {where.url}: choose another id")


def _copy_objects(
    mover: s3.Mover, settings: Settings, where: Location, snap: Snapshot, backup: BackupSettings
) -> Copied:
    buckets = {"originals": settings.bucket_originals, "thumbnails": settings.bucket_thumbnails}

    def one(job: JobObjects) -> Outcome:
        done: list[str] = []
        size = 0
        for t in job.transfers:
            key = where.object_key(t.kind, t.key)
            try:
                size += mover.copy(buckets[t.kind], t.key, where.bucket, key)
            except s3.ObjectMissing as exc:
                mover.remove_quietly(where.bucket, done)
                return Outcome(job.job_id, 0, 0, f"{t.kind} object {exc.key} is missing")
            done.append(key)
        return Outcome(job.job_id, len(done), size, None)

    progress = Progress("copied", snap.job_count)
    copied = Copied()
    jobs = (job_objects(line) for line in read_lines(snap.jobs))
    for outcome in run_all(one, jobs, backup.concurrency):
        if outcome.missing:
            log.warning("job %s left out of the backup: its %s", outcome.job_id, outcome.missing)
            copied.skipped.add(outcome.job_id)
        progress.add(outcome.objects, outcome.bytes)
    progress.finish()
    copied.objects, copied.bytes = progress.objects, progress.bytes
    return copied


def _prune(target: Minio, where: Location, backup: BackupSettings, pruned: list[str]) -> None:
    """Apply retention to the backups next to this one; appends each id once it is gone."""
    found: list[Manifest] = []
    for name in s3.child_dirs(target, where.bucket, where.parent):
        if not re.match(ID_PATTERN, name):
            continue
        other = where.sibling(name)
        data = s3.get_bytes(target, where.bucket, other.manifest_key)
        if data is None:
            continue  # not a backup, or one that never completed
        try:
            manifest = parse(data)
        except ManifestError as exc:
            log.warning("retention ignores %s: %s", other.url, exc)
            continue
        if manifest.id == name:
            found.append(manifest)
    doomed = select_pruned(
        found, service=backup.service, keep_id=backup.id, now=datetime.now(UTC),
        count=backup.retention_count, max_age_seconds=backup.retention_max_age_seconds,
    )
    for backup_id in doomed:
        other = where.sibling(backup_id)
        deleted = s3.delete_tree(target, where.bucket, other.base, other.manifest_key)
        log.info("retention: deleted backup %s (%d objects) at %s", backup_id, deleted, other.url)
        pruned.append(backup_id)
