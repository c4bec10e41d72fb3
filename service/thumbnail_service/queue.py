"""Dramatiq on Redis: broker construction and the one message type, "process job X".

Messages carry only the job id; PostgreSQL holds everything else. That is what lets the
sweeper rebuild any lost message from the database alone.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name

from .errors import DependencyUnavailable
from .settings import Settings

ACTOR_NAME = "process_job"
NAMESPACE = "dramatiq"


def redis_parameters(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.redis_host,
        "port": settings.redis_port,
        "db": settings.redis_db,
        "password": settings.redis_password.get_secret_value() or None,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
        "health_check_interval": 15,
    }


def build_broker(
    settings: Settings, middleware: list[dramatiq.Middleware] | None = None
) -> RedisBroker:
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        namespace=NAMESPACE, middleware=middleware, **redis_parameters(settings)
    )
    broker.declare_queue(settings.queue_name)
    return broker


class JobQueue:
    """Producer side (API and sweeper): enqueue a job id, read the queue depth."""

    def __init__(self, broker: RedisBroker, queue_name: str) -> None:
        self._broker = broker
        self._queue_name = queue_name

    def enqueue_sync(self, job_id: UUID, delay_ms: int | None = None) -> None:
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=self._queue_name,
            actor_name=ACTOR_NAME,
            args=(str(job_id),),
            kwargs={},
            options={},
        )
        try:
            self._broker.enqueue(message, delay=delay_ms)
        except redis.RedisError as exc:
            raise DependencyUnavailable("redis", f"{type(exc).__name__}: {exc}") from exc

    async def enqueue(self, job_id: UUID) -> None:
        await asyncio.to_thread(self.enqueue_sync, job_id)

    def _depth_sync(self) -> dict[str, int]:
        client: redis.Redis[bytes] = self._broker.client
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.llen(f"{NAMESPACE}:{self._queue_name}")
                pipe.llen(f"{NAMESPACE}:{dq_name(self._queue_name)}")
                ready, delayed = pipe.execute()
        except redis.RedisError as exc:
            raise DependencyUnavailable("redis", f"{type(exc).__name__}: {exc}") from exc
        return {"ready": int(ready), "delayed": int(delayed)}

    async def depth(self) -> dict[str, int]:
        return await asyncio.to_thread(self._depth_sync)

    async def ping(self) -> None:
        def ping() -> None:
            try:
                self._broker.client.ping()
            except redis.RedisError as exc:
                raise DependencyUnavailable("redis", f"{type(exc).__name__}: {exc}") from exc

        await asyncio.to_thread(ping)

    def close(self) -> None:
        self._broker.close()
