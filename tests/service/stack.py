"""The service under test as real processes: thumbnail-migrate, thumbnail-api, thumbnail-worker.

Each process runs in its own session (process group) so a test can SIGKILL a worker with
everything it forked, exactly like a node losing a pod.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import httpx

from thumbnail_substrate import testing
from thumbnail_substrate.service_process import ServiceStack

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.2, what: str
) -> T:
    """The shared wait_for; an HTTP or socket error counts as "not yet"."""
    return testing.wait_for(
        probe, timeout=timeout, interval=interval, what=what, ignore=(httpx.HTTPError, OSError)
    )


# API + worker(s) for one test module, sharing one database, queue and bucket pair.
Stack = ServiceStack
