"""Per-job time limit that really stops libvips: eval progress signal + set_kill.

A Python-side timeout cannot interrupt a C call; libvips checks its kill flag between
tiles, so killing from the `eval` callback aborts the running pipeline promptly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyvips

from .errors import ImagingError, ProcessingTimeoutError


class Deadline:
    def __init__(self, timeout_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._timeout = timeout_seconds
        self._end = clock() + timeout_seconds
        self.killed = False  # set when we killed a libvips pipeline

    @property
    def expired(self) -> bool:
        return self._clock() >= self._end

    def check(self) -> None:
        """Raise between steps, where no libvips work is running."""
        if self.expired:
            raise ProcessingTimeoutError(f"processing exceeded {self._timeout:g} s")

    def watch(self, image: pyvips.Image) -> None:
        """Kill `image`'s pipeline from libvips' progress callback once time is up."""
        image.set_progress(True)
        image.signal_connect("eval", self._on_eval)

    def _on_eval(self, image: pyvips.Image, _progress: Any) -> None:
        # Runs on a libvips worker thread; must not raise (cffi would swallow it).
        if self.expired:
            self.killed = True
            image.set_kill(True)

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


def _first_line(exc: pyvips.Error) -> str:
    detail = (exc.detail or exc.message or "").strip().splitlines()
    return detail[-1].strip() if detail else "libvips error"
