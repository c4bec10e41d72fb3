"""Requests per minute per API key (429 with Retry-After past it), counted in Redis so that
every API replica counts the same window: the first request of a key opens a 60 s window,
each one increments it, and a request past the limit is told when the window ends.

Redis being down must not take the API down with it: the limit is then not enforced (fail
open, logged), while every other Redis use answers 503 as before.
"""

from __future__ import annotations

import logging

from ..errors import DependencyUnavailable
from ..queue import JobQueue

log = logging.getLogger(__name__)
WINDOW_SECONDS = 60
_PREFIX = "thumbnail:rate:"
# Returns -1 while within the limit, else the seconds left in the window.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n > tonumber(ARGV[2]) then return math.max(redis.call('TTL', KEYS[1]), 1) end
return -1
"""


class RateLimiter:
    """On the job queue's Redis and threads (JobQueue.call)."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._count = queue.client.register_script(_COUNT)

    async def retry_after(self, key_id: str, limit: int) -> int | None:
        """None while `key_id` is within `limit` requests this window, else the seconds
        until the window ends."""
        try:
            wait = int(await self._queue.call(
                lambda: self._count(keys=[_PREFIX + key_id], args=[WINDOW_SECONDS, limit])))
        except DependencyUnavailable as exc:
            log.warning("rate limit not enforced: %s", exc)
            return None
        return None if wait < 0 else wait
