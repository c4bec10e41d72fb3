"""Recovery from the database: re-enqueue jobs whose pickup deadline or lease expired.

Redis runs without persistence and a SIGKILLed worker never acks; either way the job row
stays `queued`/`processing` with a `lease_expires_at` in the past. Run by the worker command
as a Dramatiq fork process (one per worker pod); several sweepers may run at once because
the reclaim query uses SKIP LOCKED and a duplicate message is dropped by the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..errors import DependencyUnavailable
from ..logs import configure_logging
from ..queue import JobQueue, build_broker
from ..repository import JobRepository, create_pool
from ..settings import Settings

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


async def run_sweeper(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    pool = await create_pool(settings)
    repo = JobRepository(
        pool,
        lease_seconds=settings.job_lease_seconds,
        timeout_seconds=settings.dependency_timeout_seconds,
    )
    queue = JobQueue(
        build_broker(settings),
        settings.queue_name,
        timeout_seconds=settings.dependency_timeout_seconds,
    )
    log.info(
        "sweeper: every %.1fs, lease %.1fs",
        settings.sweep_interval_seconds,
        settings.job_lease_seconds,
    )
    try:
        while not stop.is_set():
            try:
                if count := await sweep_once(repo, queue):
                    log.warning("sweeper: re-enqueued %d lost job(s)", count)
            except DependencyUnavailable as exc:
                log.warning("sweeper: %s", exc)
            except Exception:
                log.exception("sweeper: unexpected error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.sweep_interval_seconds)
    finally:
        queue.close()
        await pool.close()


def main() -> None:
    """Dramatiq `--fork-function` entry point."""
    settings = Settings()
    configure_logging(settings.log_level)
    asyncio.run(run_sweeper(settings))
