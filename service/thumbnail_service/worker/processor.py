"""One job, start to finish: claim -> download original -> render -> upload -> record.

Outcomes: succeeded; failed at once for permanent errors (bad image, missing original);
transient errors (storage or database down, anything unexpected) go back to `queued` and are
retried with exponential backoff until `max_attempts`, then fail with the last reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from uuid import UUID

from .. import imaging
from ..errors import DependencyUnavailable
from ..jobs import JobRecord, ThumbnailRecord
from ..rendering.inline import InlineRenderer
from ..rendering.protocol import Renderer, RendererCrashedError
from ..repository import JobRepository
from ..settings import Settings
from ..storage import ObjectNotFound, Storage, thumbnail_key
from . import metrics

log = logging.getLogger(__name__)

# ImagingError subclasses are all permanent: the same bytes will fail the same way again.
PERMANENT_ERRORS = (imaging.ImagingError, ObjectNotFound)


def retry_delay_seconds(settings: Settings, attempts: int) -> float:
    delay = settings.retry_min_backoff_seconds * 2 ** max(attempts - 1, 0)
    return float(min(delay, settings.retry_max_backoff_seconds))


@dataclass(frozen=True)
class _Stored:
    """A job's thumbnails, stored: their rows, the job's placeholder and how long rendering
    took."""

    records: list[ThumbnailRecord]
    placeholder: str | None
    render_seconds: float


class JobProcessor:
    def __init__(
        self,
        settings: Settings,
        repository: JobRepository,
        storage: Storage,
        schedule_retry: Callable[[UUID, int], None],
        renderer: Renderer | None = None,
    ) -> None:
        self._settings = settings
        self._repo = repository
        self._storage = storage
        self._schedule_retry = schedule_retry  # (job id, delay ms): enqueue a delayed message
        self._renderer = renderer or InlineRenderer()
        # Renders block a thread each (waiting on libvips or on the child process): one per
        # render process, apart from the default executor (I/O helpers) and its cap. Jobs
        # beyond that wait here (not counted against their time limit) while others render.
        self._render_threads = ThreadPoolExecutor(
            max_workers=settings.render_concurrency, thread_name_prefix="render"
        )

    async def process(self, job_id: UUID) -> None:
        # A database outage here propagates: Dramatiq retries the message, and the job,
        # still `queued`, stays recoverable by the sweeper either way.
        job = await self._repo.claim(job_id)
        if job is None:
            metrics.message_dropped("not_claimable")
            log.info("job %s: not claimable (finished, deleted or owned): message dropped", job_id)
            return
        with metrics.attempt(job) as attempt:
            await self._attempt(job, attempt)

    async def _attempt(self, job: JobRecord, attempt: metrics.Attempt) -> None:
        assert job.lease_token is not None
        token = job.lease_token
        heartbeat = asyncio.create_task(self._heartbeat(job.id, token))
        try:
            stored = await self._render_and_store(job)
        except PERMANENT_ERRORS as exc:
            await self._fail(job, token, _describe_permanent(exc), metrics.failure_reason(exc),
                             attempt)
            return
        except Exception as exc:  # transient by default: bounded by max_attempts
            await self._retry_or_fail(job, token, exc, attempt)
            return
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        records = stored.records
        if await self._repo.succeed(job.id, token, records, stored.placeholder,
                                    stored.render_seconds):
            attempt.succeeded()
            log.info("job %s: succeeded (%d thumbnails)", job.id, len(records))
        elif await self._repo.get(job.id) is None:
            attempt.discarded("deleted")
            # Deleted while we worked: do not leave orphaned thumbnails behind.
            await self._storage.delete(self._storage.thumbnails, [r.object_key for r in records])
            log.info("job %s: deleted during processing; thumbnails removed", job.id)
        else:
            attempt.discarded("lease_lost")
            log.warning("job %s: lease lost before completion; another worker owns it", job.id)

    async def _render_and_store(self, job: JobRecord) -> _Stored:
        original = await self._storage.get(self._storage.originals, job.original_key)
        # The renderer enforces the time limit itself: libvips' kill flag first, then (when
        # isolated) SIGKILL of the child process, which also stops encoders deaf to the flag.
        render = partial(
            self._renderer.render,
            original,
            job.options.to_render_options(),
            allowed=self._settings.allowed_format_set,
            max_pixels=self._settings.max_pixels,
            timeout_seconds=self._settings.job_timeout_seconds,
        )
        loop = asyncio.get_running_loop()
        thumbnails, seconds = await loop.run_in_executor(
            self._render_threads, metrics.timed_call, render
        )
        metrics.rendered(job, thumbnails, seconds)
        records = [
            ThumbnailRecord(
                name=thumb.name,
                width=thumb.width,
                height=thumb.height,
                format=thumb.format.value,
                content_type=thumb.content_type,
                bytes=len(thumb.data),
                sha256=hashlib.sha256(thumb.data).hexdigest(),
                object_key=thumbnail_key(job.id, thumb.name),
            )
            for thumb in thumbnails
        ]
        # Uploads run concurrently (each in a thread of its own): a job's storage time is
        # its slowest upload, not the sum. Any failure fails the attempt (objects already
        # written are overwritten by the retry: keys are deterministic).
        await asyncio.gather(
            *(
                self._storage.put(self._storage.thumbnails, r.object_key, t.data, t.content_type)
                for r, t in zip(records, thumbnails, strict=True)
            )
        )
        hashed = next((t.placeholder for t in thumbnails if t.placeholder), None)
        return _Stored(records, hashed, seconds)

    async def _fail(
        self, job: JobRecord, token: UUID, reason: str, reason_class: str,
        attempt: metrics.Attempt,
    ) -> None:
        if await self._repo.fail(job.id, token, reason):
            attempt.failed(reason_class)
            log.warning("job %s: failed: %s", job.id, reason)
        else:
            attempt.discarded("lease_lost")

    async def _retry_or_fail(
        self, job: JobRecord, token: UUID, exc: Exception, attempt: metrics.Attempt
    ) -> None:
        reason = _describe(exc)
        if job.attempts >= self._settings.max_attempts:
            await self._fail(job, token, f"gave up after {job.attempts} attempts: {reason}",
                             "retries_exhausted", attempt)
            return
        delay = retry_delay_seconds(self._settings, job.attempts)
        if await self._repo.release_for_retry(job.id, token, reason, delay):
            attempt.retried(metrics.retry_reason(exc))
            log.warning(
                "job %s: attempt %d failed (%s); retry in %.1fs",
                job.id,
                job.attempts,
                reason,
                delay,
            )
            try:
                await asyncio.to_thread(self._schedule_retry, job.id, int(delay * 1000))
            except DependencyUnavailable:
                log.warning("job %s: could not schedule retry; the sweeper will", job.id)
        else:
            attempt.discarded("lease_lost")

    async def _heartbeat(self, job_id: UUID, token: UUID) -> None:
        interval = self._settings.job_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self._repo.renew_lease(job_id, token):
                    log.warning("job %s: lease lost (expired or job deleted)", job_id)
                    return
            except DependencyUnavailable as exc:
                log.warning("job %s: lease renewal failed: %s", job_id, exc)


def _describe_permanent(exc: BaseException) -> str:
    if isinstance(exc, ObjectNotFound):
        return "the original image is missing from storage"
    if isinstance(exc, imaging.CorruptImageError):
        return f"corrupt or truncated image: {exc}"
    if isinstance(exc, imaging.ProcessingTimeoutError):
        return f"processing exceeded the time limit: {exc}"
    if isinstance(exc, RendererCrashedError):
        return f"{exc}; the image was not processed"
    return str(exc) or type(exc).__name__


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DependencyUnavailable) else f"{type(exc).__name__}: {exc}"
