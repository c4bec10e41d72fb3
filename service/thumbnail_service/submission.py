"""The submit use case, apart from HTTP: an accepted upload becomes a stored original, a job
row and a queue message, in that order, idempotently.

    validated upload -> (Idempotency-Key seen? replay) -> original -> row -> enqueue

A row always has its original (stored first; removed again when the row is not created), and
a worker hears about a job only once its row is committed. If the queue is down the job is
still accepted: the sweeper enqueues it later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import uuid4

from .errors import DependencyUnavailable
from .imaging import ImageInfo
from .jobs import DEFAULT_TENANT, JobOptions, JobRecord, NewJob
from .queue import JobQueue
from .repository import IdempotencyKeyContended, JobRepository
from .storage import Storage, original_key

log = logging.getLogger(__name__)


class IdempotencyConflict(Exception):
    """The Idempotency-Key was already used for a different upload or options."""


@dataclass(frozen=True)
class Submission:
    job: JobRecord
    replayed: bool  # True: the earlier job of the same Idempotency-Key


@dataclass(frozen=True)
class Submitter:
    repository: JobRepository
    storage: Storage
    queue: JobQueue

    async def submit(
        self, data: bytes, options: JobOptions, info: ImageInfo, *, fingerprint: str,
        idempotency_key: str | None, callback_url: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Submission:
        if idempotency_key is not None:  # "" is a key too; only None means none
            existing = await self.repository.find_by_idempotency_key(idempotency_key, tenant)
            if existing is not None:
                return _replay(existing, fingerprint)
        job_id = uuid4()
        new_job = NewJob(
            id=job_id,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            options=options,
            original_key=original_key(job_id),
            original_format=info.format.value,
            original_width=info.width,
            original_height=info.height,
            original_bytes=len(data),
            callback_url=callback_url,
            tenant=tenant,
        )
        job, created = await self._store(new_job, data)
        if not created:  # lost a race with a concurrent request carrying the same key
            return _replay(job, fingerprint)
        try:
            await self.queue.enqueue(job.id)
        except DependencyUnavailable as exc:
            log.warning("job %s stored but not enqueued (%s); the sweeper will enqueue it",
                        job.id, exc)
        return Submission(job, replayed=False)

    async def _store(self, new_job: NewJob, data: bytes) -> tuple[JobRecord, bool]:
        """Original first, then the row. A row known not to exist (an idempotency race lost)
        leaves no orphaned object; after a database failure the row's fate is unknown."""
        content_type = f"image/{new_job.original_format}"
        await self.storage.put(self.storage.originals, new_job.original_key, data, content_type)
        try:
            job, created = await self.repository.create(new_job)
        except DependencyUnavailable:
            # Unknown outcome: a PostgreSQL that stopped answering mid-INSERT may still
            # commit it when it resumes, after the client got its 503. Keep the original so
            # such a row is a job that runs (the sweeper enqueues it; a retry with the same
            # Idempotency-Key is answered with it), not one that fails for want of its
            # image. An original whose row never came is collected by the sweeper
            # (orphans.py) once it is older than THUMBNAIL_ORPHAN_GRACE_SECONDS.
            raise
        except IdempotencyKeyContended:  # other requests keep creating and deleting it
            await self._forget_original(new_job.original_key)
            raise IdempotencyConflict from None
        if not created:
            await self._forget_original(new_job.original_key)
        return job, created

    async def _forget_original(self, key: str) -> None:
        try:
            await self.storage.delete(self.storage.originals, [key])
        except DependencyUnavailable:
            log.warning("could not remove orphaned original %s", key)


def _replay(job: JobRecord, fingerprint: str) -> Submission:
    if job.request_fingerprint != fingerprint:
        raise IdempotencyConflict
    return Submission(job, replayed=True)
