"""One renderer per rendition across API replicas: a Redis lock per cache key.

SET NX PX with a random token; released only by its holder (compare-and-delete), expiring
by itself if the holder dies. Redis being down must not stop renditions: callers then
render without the lock (each replica still renders a key once, see service.py).
"""

from __future__ import annotations

import secrets

from ..queue import JobQueue

_PREFIX = "thumbnail:rendition-lock:"
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RenditionLocks:
    """On the job queue's Redis and threads (JobQueue.call: errors are DependencyUnavailable)."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._client = queue.client
        self._release = self._client.register_script(_RELEASE)

    async def acquire(self, key: str, ttl_seconds: float) -> str | None:
        """A token if this caller now holds the lock, None if another does."""
        token = secrets.token_hex(8)

        def take() -> bool:
            return bool(self._client.set(_PREFIX + key, token, nx=True,
                                         px=max(1, int(ttl_seconds * 1000))))

        return token if await self._queue.call(take) else None

    async def held(self, key: str) -> bool:
        return bool(await self._queue.call(lambda: self._client.exists(_PREFIX + key)))

    async def release(self, key: str, token: str) -> None:
        await self._queue.call(lambda: self._release(keys=[_PREFIX + key], args=[token]))
