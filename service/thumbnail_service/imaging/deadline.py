"""Per-job time limit that really stops libvips: a watchdog thread sets libvips' kill flag.

A Python-side timeout cannot interrupt a C call; libvips checks its kill flag between
tiles, so setting it on the watched images aborts the running pipeline promptly.

One shared watchdog thread per process wakes at the earliest armed deadline. (This replaced
a Python callback on libvips' per-tile `eval` signal: 11 calls cost 0.6 ms on a 256 px
thumbnail of a 2 MP JPEG, and a 1024 px one makes 83; see docs/bench/engine.md.)
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyvips

from .errors import ImagingError, ProcessingTimeoutError


class Deadline:
    """Time limit of one job; `close()` (or `with`) disarms it and drops the watched images."""

    def __init__(self, timeout_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._timeout = timeout_seconds
        self._end = clock() + timeout_seconds
        self._lock = threading.Lock()
        self._watched: list[pyvips.Image] = []
        self._armed = False
        self.killed = False  # set when we killed (or refused to start) a libvips pipeline

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def expired(self) -> bool:
        return self._clock() >= self._end

    def check(self) -> None:
        """Raise between steps, where no libvips work is running."""
        if self.expired:
            raise ProcessingTimeoutError(f"processing exceeded {self._timeout:g} s")

    def watch(self, image: pyvips.Image) -> None:
        """Kill `image`'s pipeline once time is up (also if it already is)."""
        with self._lock:
            if self.expired:
                self.killed = True
                image.set_kill(True)
                return
            self._watched.append(image)
            if not self._armed:
                self._armed = True
                _WATCHDOG.arm(time.monotonic() + (self._end - self._clock()), self)

    def close(self) -> None:
        with self._lock:
            self._watched.clear()  # the pipelines (and their pixels) may be freed now
            armed, self._armed = self._armed, False
        if armed:
            _WATCHDOG.disarm(self)

    def _expire(self) -> None:
        """Called by the watchdog thread at the deadline."""
        with self._lock:
            for image in self._watched:
                self.killed = True
                image.set_kill(True)
            self._watched.clear()
            self._armed = False

    @contextmanager
    def guard(self, error: type[ImagingError], what: str) -> Iterator[None]:
        """Translate libvips errors: timeout if we killed it (or time is up), else `error`."""
        try:
            yield
        except pyvips.Error as exc:
            if self.killed or self.expired:
                raise ProcessingTimeoutError(
                    f"processing exceeded {self._timeout:g} s while {what}"
                ) from exc
            raise error(f"{what}: {_first_line(exc)}") from exc


class _Watchdog:
    """One daemon thread expiring armed deadlines in time order (started on first use)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, at: float, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._ids), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="vips-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()

    def disarm(self, deadline: Deadline) -> None:
        with self._cond:
            self._heap = [entry for entry in self._heap if entry[2] is not deadline]
            heapq.heapify(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._heap:
                    self._cond.wait()
                    continue
                at, _, deadline = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            deadline._expire()

    def reset_after_fork(self) -> None:
        self._cond = threading.Condition()
        self._heap = []
        self._thread = None


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.reset_after_fork)


def _first_line(exc: pyvips.Error) -> str:
    detail = (exc.detail or exc.message or "").strip().splitlines()
    return detail[-1].strip() if detail else "libvips error"
