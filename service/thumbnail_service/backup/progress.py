"""Progress lines for long runs: every so many objects or seconds, whichever comes first."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Progress:
    def __init__(
        self,
        verb: str,
        total_jobs: int,
        *,
        every_objects: int = 1000,
        every_seconds: float = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verb = verb
        self.total_jobs = total_jobs
        self.jobs = self.objects = self.bytes = 0
        self._every_objects = every_objects
        self._every_seconds = every_seconds
        self._clock = clock
        self._start = self._last_time = clock()
        self._last_objects = 0

    def add(self, objects: int, size: int) -> str | None:
        """Count one job's objects; returns the line it logged, if it was time for one."""
        self.jobs += 1
        self.objects += objects
        self.bytes += size
        now = self._clock()
        due = (
            self.objects - self._last_objects >= self._every_objects
            or now - self._last_time >= self._every_seconds
        )
        if not due:
            return None
        self._last_time, self._last_objects = now, self.objects
        line = self.line()
        log.info("%s", line)
        return line

    def finish(self) -> str:
        """The closing line, logged unless the last progress line said the same."""
        line = self.line()
        if self.jobs == 0 or self.objects != self._last_objects:
            log.info("%s", line)
        return line

    def line(self) -> str:
        elapsed = self._clock() - self._start
        rate = self.bytes / 1e6 / max(elapsed, 1)  # no absurd rates in the first second
        return (
            f"{self.verb} {self.jobs}/{self.total_jobs} jobs, {self.objects} objects, "
            f"{self.bytes / 1e6:.1f} MB in {elapsed:.0f}s ({rate:.1f} MB/s)"
        )
