"""Blocking dependency clients (redis-py, the MinIO SDK) called from async code, isolated.

Each dependency gets threads of its own instead of asyncio's default executor (6 threads on a
2-core machine, shared with everything else): a hung MinIO can then occupy at most its own
threads, never the ones Redis calls or readiness checks need. A call that finds every thread
busy waits at most `wait_seconds` for one and then fails as `DependencyUnavailable`, so a
backlog behind a hung dependency turns into prompt 503s instead of a growing queue. The
calls themselves are bounded by the clients' socket timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from .errors import DependencyUnavailable

T = TypeVar("T")


class BlockingCalls:
    def __init__(self, dependency: str, threads: int, wait_seconds: float) -> None:
        self.dependency = dependency
        self.threads = threads
        self._wait = wait_seconds
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=dependency)
        self._slots: asyncio.Semaphore | None = None

    async def run(self, fn: Callable[[], T]) -> T:
        slots = self._slots = self._slots or asyncio.Semaphore(self.threads)
        try:
            await asyncio.wait_for(slots.acquire(), self._wait)
        except TimeoutError:
            raise DependencyUnavailable(
                self.dependency,
                f"all {self.threads} connections busy for {self._wait:g}s (no answer)",
            ) from None
        loop = asyncio.get_running_loop()

        def release(_: Future[T]) -> None:
            # The slot is free once the thread is, not when the caller gives up on it.
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(slots.release)

        try:
            future = self._executor.submit(fn)
        except BaseException:
            slots.release()
            raise
        future.add_done_callback(release)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
