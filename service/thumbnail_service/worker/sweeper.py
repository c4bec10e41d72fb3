"""Recovery from the database: re-enqueue jobs whose pickup deadline or lease expired (and,
one bounded page per pass, remove originals no job row refers to: orphans.py).

Redis runs without persistence and a SIGKILLed worker never acks; either way the job row
stays `queued`/`processing` with a `lease_expires_at` in the past. Run by the worker command
as a process of its own next to the worker processes (one per worker pod, supervised like
them); several sweepers may run at once because the reclaim query uses SKIP LOCKED and a
duplicate message is dropped by the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from ..errors import DependencyUnavailable
from ..logs import configure_logging
from ..queue import JobQueue
from ..repository import JobRepository, create_pool
from ..settings import Settings
from ..storage import Storage
from ..webhooks.delivery import deliver_until_stopped
from . import metrics
from .link import SupervisorLink
from .orphans import OrphanCollector

log = logging.getLogger(__name__)


async def sweep_once(repo: JobRepository, queue: JobQueue) -> int:
    """One pass; returns how many jobs were re-enqueued."""
    total = 0
    while True:
        job_ids = await repo.reclaim_expired(limit=200)
        for job_id in job_ids:
            try:
                await queue.enqueue(job_id)
            except DependencyUnavailable as exc:
                # The job keeps its new deadline and comes back on a later pass.
                log.warning("sweeper: cannot enqueue %s: %s", job_id, exc)
                return total
        total += len(job_ids)
        if len(job_ids) < 200:
            return total


async def run_sweeper(
    settings: Settings,
    stop: asyncio.Event | None = None,
    beat: Callable[[], None] | None = None,
) -> None:
    """Sweeps until `stop` is set; calls `beat` every THUMBNAIL_WORKER_HEARTBEAT_SECONDS
    while its event loop runs (the supervisor replaces a sweeper that stops beating)."""
    stop = stop or asyncio.Event()
    pool = await create_pool(settings)
    repo = JobRepository.from_settings(pool, settings)
    queue = JobQueue.from_settings(settings)
    storage = Storage(settings)
    orphans = OrphanCollector(repo, storage, settings.orphan_grace_seconds)
    log.info(
        "sweeper: every %.1fs, lease %.1fs",
        settings.sweep_interval_seconds,
        settings.job_lease_seconds,
    )

    async def beat_until_stopped() -> None:
        while beat is not None and not stop.is_set():
            beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.worker_heartbeat_seconds)

    beating = asyncio.create_task(beat_until_stopped())
    delivering = asyncio.create_task(deliver_until_stopped(settings, repo, stop))
    try:
        while not stop.is_set():
            try:
                if count := await sweep_once(repo, queue):
                    metrics.jobs_reenqueued(count)
                    log.warning("sweeper: re-enqueued %d lost job(s)", count)
                metrics.orphans_removed(len(await orphans.collect_once()))
            except DependencyUnavailable as exc:
                log.warning("sweeper: %s", exc)
            except Exception:
                log.exception("sweeper: unexpected error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.sweep_interval_seconds)
    finally:
        beating.cancel()
        await asyncio.gather(delivering, return_exceptions=True)  # it stops with `stop`
        queue.close()
        storage.close()
        try:  # a hung PostgreSQL must not hold the exit
            await asyncio.wait_for(pool.close(), settings.dependency_timeout_seconds)
        except TimeoutError:
            pool.terminate()


def main() -> None:
    """The sweeper process, started (and replaced when it dies) by the supervisor.
    SIGTERM or SIGINT stop it."""
    link = SupervisorLink.from_environment()
    settings = Settings()
    configure_logging(settings.log_level)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_sweeper(settings, stop, link.beat)

    asyncio.run(run())
    log.info("sweeper: stopped")

