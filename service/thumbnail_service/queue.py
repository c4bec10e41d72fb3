"""Dramatiq on Redis: broker construction and the one message type, "process job X".

Messages carry only the job id; PostgreSQL holds everything else. That is what lets the
sweeper rebuild any lost message from the database alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from redis.backoff import NoBackoff
from redis.retry import Retry

from .blocking import BlockingCalls
from .errors import DependencyUnavailable
from .settings import Settings

T = TypeVar("T")
ACTOR_NAME = "process_job"
NAMESPACE = "dramatiq"
# Concurrent Redis calls per process from async code (redis-py's pool is thread-safe).
REDIS_THREADS = 8
# Live worker processes: a sorted set per queue, member = worker id, score = when its last
# heartbeat expires, both on Redis' clock (TIME), so that pods' clocks need not agree.
WORKERS_KEY = "thumbnail:workers:{queue}"
_BEAT = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
return 1
"""
_LIVE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. t)
return redis.call('ZCARD', KEYS[1])
"""


def redis_parameters(settings: Settings) -> dict[str, Any]:
    timeout = settings.dependency_timeout_seconds
    return {
        "host": settings.redis_host,
        "port": settings.redis_port,
        "db": settings.redis_db,
        "password": settings.redis_password.get_secret_value() or None,
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "health_check_interval": 15,
        # redis-py's default retries a timed-out command 3 times with backoff (a hung Redis
        # then holds a call for 4 timeouts and more). Retry once, at once, only when a
        # pooled connection turns out to be dead (Redis restarted); never after a timeout.
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
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

    def __init__(
        self, broker: RedisBroker, queue_name: str, *, timeout_seconds: float = 3.0
    ) -> None:
        self._broker = broker
        self._queue_name = queue_name
        self._calls = BlockingCalls("redis", REDIS_THREADS, timeout_seconds)
        self._beat = broker.client.register_script(_BEAT)
        self._live = broker.client.register_script(_LIVE)

    @classmethod
    def from_settings(cls, settings: Settings, broker: RedisBroker | None = None) -> JobQueue:
        return cls(broker or build_broker(settings), settings.queue_name,
                   timeout_seconds=settings.dependency_timeout_seconds)

    @property
    def client(self) -> redis.Redis[bytes]:
        """The broker's Redis client, for other small uses of the same Redis (`call`)."""
        client: redis.Redis[bytes] = self._broker.client
        return client

    async def call(self, fn: Callable[[], T]) -> T:
        """A blocking Redis call of another user of this Redis (rendition locks, rate
        limits) on this queue's threads, a Redis error as DependencyUnavailable."""

        def run() -> T:
            try:
                return fn()
            except redis.RedisError as exc:
                raise DependencyUnavailable("redis", f"{type(exc).__name__}: {exc}") from exc

        return await self._calls.run(run)

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
        await self._calls.run(lambda: self.enqueue_sync(job_id))

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
        return await self._calls.run(self._depth_sync)

    # --- worker heartbeats ---------------------------------------------------------------

    def _workers_key(self) -> str:
        return WORKERS_KEY.format(queue=self._queue_name)

    def beat_sync(self, worker_id: str, ttl_seconds: float) -> None:
        """This worker is alive for the next `ttl_seconds` (worker side, blocking)."""
        try:
            self._beat(keys=[self._workers_key()], args=[worker_id, ttl_seconds])
        except redis.RedisError as exc:
            raise DependencyUnavailable("redis", f"{type(exc).__name__}: {exc}") from exc

    def forget_sync(self, worker_id: str) -> None:
        """This worker stops (a graceful exit): count it out at once."""
        try:
            self._broker.client.zrem(self._workers_key(), worker_id)
        except redis.RedisError as exc:
            raise DependencyUnavailable("redis", f"{type(exc).__name__}: {exc}") from exc

    async def live_workers(self) -> int:
        """Worker processes whose last heartbeat has not expired (expired ones are dropped)."""

        def count() -> int:
            try:
                return int(self._live(keys=[self._workers_key()]))
            except redis.RedisError as exc:
                raise DependencyUnavailable("redis", f"{type(exc).__name__}: {exc}") from exc

        return await self._calls.run(count)

    async def ping(self) -> None:
        def ping() -> None:
            try:
                self._broker.client.ping()
            except redis.RedisError as exc:
                raise DependencyUnavailable("redis", f"{type(exc).__name__}: {exc}") from exc

        await self._calls.run(ping)

    def close(self) -> None:
        self._calls.close()
        self._broker.close()
