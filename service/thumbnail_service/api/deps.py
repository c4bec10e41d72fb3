"""Process-wide resources of the API, created in the lifespan and kept on app.state."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import asyncpg
from fastapi import Request

from ..errors import DependencyUnavailable
from ..keys import ApiKeys
from ..queue import JobQueue
from ..renditions.locks import RenditionLocks
from ..renditions.service import Renditions
from ..repository import JobRepository, create_pool
from ..settings import Settings
from ..storage import Storage
from ..webhooks.delivery import deliver_until_stopped
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    repository: JobRepository
    storage: Storage
    queue: JobQueue
    renditions: Renditions
    keys: ApiKeys
    limiter: RateLimiter
    # The webhook outbox is delivered from here too (webhooks/delivery.py).
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    delivering: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        pool = await create_pool(settings)  # lazy: starts even while PostgreSQL is down
        storage = Storage(settings)
        try:
            await storage.ensure_buckets()
        except DependencyUnavailable as exc:
            log.warning("buckets not checked at startup (created on first upload): %s", exc)
        repository = JobRepository.from_settings(pool, settings)
        queue = JobQueue.from_settings(settings)
        renditions = Renditions(settings, storage, repository, RenditionLocks(queue))
        renditions.start()
        services = cls(
            settings=settings,
            pool=pool,
            repository=repository,
            storage=storage,
            queue=queue,
            renditions=renditions,
            keys=ApiKeys(repository),
            limiter=RateLimiter(queue),
        )
        services.delivering = asyncio.create_task(
            deliver_until_stopped(settings, repository, services.stopping))
        return services

    async def close(self) -> None:
        self.stopping.set()
        if self.delivering is not None:  # (a delivery under way is bounded by its timeout)
            await asyncio.gather(self.delivering, return_exceptions=True)
        await self.renditions.drain(self.settings.dependency_timeout_seconds)
        self.renditions.close()
        self.queue.close()
        self.storage.close()
        try:  # a hung PostgreSQL must not hold the shutdown
            await asyncio.wait_for(self.pool.close(), self.settings.dependency_timeout_seconds)
        except TimeoutError:
            self.pool.terminate()


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
