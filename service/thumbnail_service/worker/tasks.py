"""The Dramatiq entry module (`dramatiq thumbnail_service.worker.tasks`).

Dramatiq needs the broker and actors to exist at import time, so settings are read here.
Per-process resources (asyncpg pool, MinIO client) are created lazily on the worker's event
loop, so a worker starts even while its dependencies are down.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from uuid import UUID

import dramatiq
from dramatiq.middleware import AsyncIO

from ..logs import configure_logging
from ..queue import ACTOR_NAME, JobQueue, build_broker
from ..rendering.factory import build_renderer
from ..repository import JobRepository, create_pool
from ..settings import Settings
from ..storage import Storage
from . import metrics
from .processor import JobProcessor

settings = Settings()
configure_logging(settings.log_level)
broker = build_broker(settings)
broker.add_middleware(AsyncIO())
dramatiq.set_broker(broker)
job_queue = JobQueue.from_settings(settings, broker)
log = logging.getLogger(__name__)


class _Lazy:
    """The processor, built once per process on the event loop that will use it."""

    def __init__(self) -> None:
        self._processor: JobProcessor | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> JobProcessor:
        if self._processor is None:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._processor is None:
                    pool = await create_pool(settings)
                    repo = JobRepository.from_settings(pool, settings)
                    # Render child processes (THUMBNAIL_RENDER_ISOLATION=process) start
                    # here, one per worker thread; they also exit on their own when this
                    # process dies (their socket closes).
                    renderer = build_renderer(settings, metrics.render_process_replaced)
                    atexit.register(renderer.close)
                    self._processor = JobProcessor(
                        settings, repo, Storage(settings), job_queue.enqueue_sync, renderer
                    )
        return self._processor


_lazy = _Lazy()


@dramatiq.actor(
    actor_name=ACTOR_NAME,
    queue_name=settings.queue_name,
    # Dramatiq's own retries only cover "could not even reach the database"; job-level
    # retries are counted in PostgreSQL (attempts) and scheduled by the processor.
    max_retries=10,
    min_backoff=int(settings.retry_min_backoff_seconds * 1000),
    max_backoff=int(settings.retry_max_backoff_seconds * 1000),
    # Rendering stops itself at job_timeout (+ the kill grace when isolated); this only
    # catches a hung network call.
    time_limit=int((settings.job_timeout_seconds + 300) * 1000),
)
async def process_job(job_id: str) -> None:
    try:
        parsed = UUID(job_id)
    except ValueError:
        metrics.message_dropped("invalid_id")
        log.error("dropping message with invalid job id %r", job_id)
        return
    processor = await _lazy.get()
    await processor.process(parsed)
