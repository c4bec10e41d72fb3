"""Recently served renditions kept in the API process: a hit costs no MinIO round trip.

Bounded in bytes (least recently used out first) and in time: an entry lives at most
`ttl_seconds`, so a job deleted through another replica stops being served from here within
that time (this replica forgets a job's entries at once when it deletes the job). Renditions
are public and immutable anyway: a CDN may keep them far longer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Sized(Protocol):
    @property
    def size(self) -> int: ...


V = TypeVar("V", bound=Sized)


class RecentCache(Generic[V]):
    def __init__(
        self, max_bytes: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        if value.size > self._max_bytes:
            return  # never worth evicting everything else for
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + self._ttl, value)
        self._bytes += value.size
        while self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            self._drop(key)

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= value.size
