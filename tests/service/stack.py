"""The service under test as real processes: thumbnail-migrate, thumbnail-api, thumbnail-worker.

Each process runs in its own session (process group) so a test can SIGKILL a worker with
everything it forked, exactly like a node losing a pod.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from thumbnail_substrate.service_process import ServiceStack

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.2, what: str
) -> T:
    """Poll until probe() returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
            time.sleep(interval)
            continue
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


# API + worker(s) for one test module, sharing one database, queue and bucket pair.
Stack = ServiceStack
