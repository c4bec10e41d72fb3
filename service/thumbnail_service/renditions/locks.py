"""One renderer per rendition across API replicas: a Redis lock per cache key.

SET NX PX with a random token; released only by its holder (compare-and-delete), expiring
by itself if the holder dies. Redis being down must not stop renditions: callers then
render without the lock (each replica still renders a key once, see service.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

import redis

from ..blocking import BlockingCalls
from ..errors import DependencyUnavailable
from ..queue import REDIS_THREADS

T = TypeVar("T")
_PREFIX = "thumbnail:rendition-lock:"
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RenditionLocks:
    def __init__(self, client: redis.Redis, timeout_seconds: float) -> None:  # type: ignore[type-arg]
        self._client = client
        self._calls = BlockingCalls("redis", REDIS_THREADS, timeout_seconds)
        self._release = client.register_script(_RELEASE)

    def close(self) -> None:
        self._calls.close()

    async def acquire(self, key: str, ttl_seconds: float) -> str | None:
        """A token if this caller now holds the lock, None if another does."""
        token = secrets.token_hex(8)

        def take() -> bool:
            return bool(self._client.set(_PREFIX + key, token, nx=True,
                                         px=max(1, int(ttl_seconds * 1000))))

        return token if await self._redis(take) else None

    async def held(self, key: str) -> bool:
        return bool(await self._redis(lambda: self._client.exists(_PREFIX + key)))

    async def release(self, key: str, token: str) -> None:
        await self._redis(lambda: self._release(keys=[_PREFIX + key], args=[token]))

    async def _redis(self, fn: Callable[[], T]) -> T:
        def call() -> T:
            try:
                return fn()
            except redis.RedisError as exc:
                raise DependencyUnavailable("redis", f"{type(exc).__name__}: {exc}") from exc

        return await self._calls.run(call)
