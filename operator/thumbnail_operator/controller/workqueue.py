"""Per-resource work queue: coalesces triggers, serialises passes, retries, and resyncs.

kopf handlers only *trigger* a key here (the parent's own events, events of its children,
the periodic resync). Each key has at most one pass running; triggers that arrive meanwhile
collapse into one follow-up pass, so bursts of child events cost one reconcile, not many.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

ResourceKey = tuple[str, str]  # (namespace, name)


@dataclass
class _State:
    task: asyncio.Task[None] | None = None
    dirty: bool = False
    failures: int = 0


class WorkQueue:
    def __init__(
        self,
        work: Callable[[ResourceKey], Awaitable[None]],
        *,
        debounce: float = 0.1,
        resync_seconds: float = 60.0,
        max_backoff: float = 60.0,
    ) -> None:
        self._work = work
        self._debounce = debounce
        self._resync = resync_seconds
        self._max_backoff = max_backoff
        self._states: dict[ResourceKey, _State] = {}
        self._known: set[ResourceKey] = set()
        self._resync_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._resync_task = asyncio.create_task(self._resync_loop(), name="resync")

    async def stop(self) -> None:
        tasks = [s.task for s in self._states.values() if s.task] + [self._resync_task]
        for task in tasks:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)

    def remember(self, key: ResourceKey) -> None:
        """A resource that exists: include it in periodic resyncs."""
        self._known.add(key)

    def forget(self, key: ResourceKey) -> None:
        self._known.discard(key)

    def trigger(self, key: ResourceKey) -> None:
        state = self._states.setdefault(key, _State())
        if state.task is not None and not state.task.done():
            state.dirty = True
            return
        state.dirty = False
        state.task = asyncio.create_task(self._drain(key, state), name=f"reconcile {key}")

    async def _drain(self, key: ResourceKey, state: _State) -> None:
        while True:
            await asyncio.sleep(self._debounce)
            state.dirty = False
            try:
                await self._work(key)
                state.failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as err:  # retry with exponential backoff, level-based anyway
                state.failures += 1
                delay = min(self._max_backoff, 0.5 * 2 ** min(state.failures, 8))
                log.warning("reconcile of %s/%s failed (%s); retry in %.1fs", *key, err, delay)
                log.debug("reconcile failure details", exc_info=True)
                await asyncio.sleep(delay)
                state.dirty = True
            if not state.dirty:
                return

    async def _resync_loop(self) -> None:
        """Level-based safety net: revisit every known resource even without events."""
        while True:
            await asyncio.sleep(self._resync)
            for key in list(self._known):
                self.trigger(key)
