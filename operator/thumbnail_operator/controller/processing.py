"""Is the service processing jobs? Live worker processes and the oldest waiting job, as the
running API sees them, for `status.processing`.

Pods being Ready says the workers started, not that they consume: the API's
`/healthz/detailed` counts worker processes by their heartbeats in Redis and finds the oldest
job still queued in PostgreSQL. A `ProcessingMonitor` asks every ready API server in the
background (no reconcile pass waits on the network) and triggers a pass of that resource when
the answer changes; the pass reads the last answer and writes it into the status. The answer
holds the oldest job's submission time, not its age, so an unchanged queue writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from thumbnail_operator.controller.autoscaling import Demand
from thumbnail_operator.controller.workqueue import ResourceKey

log = logging.getLogger(__name__)

Obj = dict[str, Any]
HEALTH_PATH = "/healthz/detailed"
# The API answers within its dependency timeout (3 s by default) plus a little, even when a
# data store hangs; a server that takes longer is reported as not answering.
TIMEOUT_SECONDS = 5.0
CONCURRENT_PROBES = 8


@dataclass(frozen=True)
class Processing:
    """What `status.processing` says. None fields are removed from the status."""

    message: str
    live_workers: int | None = None
    oldest_queued_job_since: str | None = None
    queued_jobs: int | None = None  # the backlog
    jobs_per_minute: float | None = None  # finished over the API's last five minutes
    # The pending work and its cost, for the autoscaler; not part of the status.
    demand: Demand | None = None

    def as_status(self) -> Obj:
        return {
            "liveWorkers": self.live_workers,
            "oldestQueuedJobSince": self.oldest_queued_job_since,
            "queuedJobs": self.queued_jobs,
            "jobsPerMinute": self.jobs_per_minute,
            "message": self.message,
        }

    @classmethod
    def from_status(cls, status: Obj) -> Processing:
        return cls(str(status.get("message", "")), status.get("liveWorkers"),
                   status.get("oldestQueuedJobSince"), status.get("queuedJobs"),
                   status.get("jobsPerMinute"))


# The API counts the jobs finished in this many minutes (`jobs_finished_last_5m`).
THROUGHPUT_MINUTES = 5


def from_health(body: Obj) -> Processing:
    """`status.processing` from a `/healthz/detailed` answer (200 or 503: both have it)."""
    workers = body.get("workers") or {}
    alive, since = workers.get("alive"), workers.get("oldest_queued_job_since")
    since = _rfc3339(since) if isinstance(since, str) else None
    queued, finished = workers.get("queued_jobs"), workers.get("jobs_finished_last_5m")
    queued = queued if isinstance(queued, int) else None
    rate = round(finished / THROUGHPUT_MINUTES, 1) if isinstance(finished, int) else None
    waiting = f"a job waits since {since}" if since else "no job waits"
    demand = Demand.from_health(workers.get("demand"))
    if not isinstance(alive, int):
        message = f"worker processes unknown (Redis unreachable from the API); {waiting}"
        return Processing(message, None, since, queued, rate, demand)
    if alive == 0:
        message = f"no live worker process: jobs are accepted but not processed; {waiting}"
    else:
        message = f"{alive} worker process{'es' if alive != 1 else ''} alive; {waiting}"
    return Processing(message, alive, since, queued, rate, demand)


def unreachable(error: str) -> Processing:
    return Processing(f"the API server did not answer the operator: {error}")


def _rfc3339(timestamp: str) -> str | None:
    """The API's ISO time (microseconds, any offset) as Kubernetes writes times: UTC to the
    second with a Z, which kubectl's `date` printer columns parse; None if not a time."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def fetch_health(session: aiohttp.ClientSession, url: str) -> Processing:
    # The status says what kind of failure, the log the exact error: the same outage must
    # read the same on every look (and after an operator restart), or each look is a write.
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS), allow_redirects=False
        ) as response:
            if response.status not in (200, 503):
                return unreachable(f"HTTP {response.status} from {url}")
            body = await response.json(content_type=None)
    except TimeoutError:
        return unreachable(f"no answer from {url} within {TIMEOUT_SECONDS:g}s")
    except aiohttp.ClientConnectorDNSError as exc:
        log.debug("processing probe %s: %s", url, exc)
        return unreachable(f"{url}: the name does not resolve (is the operator outside the "
                           "cluster?)")
    except (aiohttp.ClientError, OSError) as exc:
        log.debug("processing probe %s: %s", url, exc)
        return unreachable(f"{url}: connection failed ({type(exc).__name__})")
    except ValueError:
        body = None
    return from_health(body) if isinstance(body, dict) else unreachable(f"{url}: not JSON")


Fetch = Callable[[aiohttp.ClientSession, str], Awaitable[Processing]]


class ProcessingMonitor:
    """Asks each watched API every `interval` seconds (or its own, see `watch`); calls
    `on_change(key)` when an answer differs from the previous one. `watch` and `observed` are
    called from reconcile threads."""

    def __init__(
        self, on_change: Callable[[ResourceKey], None], *, interval: float,
        fetch: Fetch = fetch_health,
    ) -> None:
        self._on_change = on_change
        self._interval = interval
        self._fetch = fetch
        self._lock = threading.Lock()
        self._urls: dict[ResourceKey, str] = {}
        self._intervals: dict[ResourceKey, float] = {}
        self._due: dict[ResourceKey, float] = {}  # loop time of each URL's next question
        self._observed: dict[ResourceKey, Processing] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _monotonic() -> float:
        return time.monotonic()

    @property
    def enabled(self) -> bool:
        return self._interval > 0

    def start(self) -> None:
        if not self.enabled:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="processing monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def watch(
        self, key: ResourceKey, url: str | None, interval: float | None = None
    ) -> Processing | None:
        """Ask `url` from now on, every `interval` seconds (None: the monitor's; an
        autoscaled resource is asked more often), or stop asking (`url` None); returns the
        last answer for `key`, or None while there is none yet. A new URL is asked at once,
        not at the next round."""
        with self._lock:
            if url is None:
                self._urls.pop(key, None)
                self._observed.pop(key, None)
                self._intervals.pop(key, None)
                self._due.pop(key, None)
                return None
            new = self._urls.get(key) != url
            self._urls[key] = url
            sooner = interval is not None and interval < self._intervals.get(
                key, self._interval)
            if sooner and key in self._due:
                self._due[key] = min(self._due[key], self._monotonic() + float(interval or 0))
            if interval is None:
                self._intervals.pop(key, None)
            else:
                self._intervals[key] = interval
            if new:
                self._observed.pop(key, None)
            observed = self._observed.get(key)
        if (new or sooner) and self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
        return observed

    def forget(self, key: ResourceKey) -> None:
        self.watch(key, None)

    async def _run(self) -> None:
        assert self._wake is not None
        limit = asyncio.Semaphore(CONCURRENT_PROBES)
        async with aiohttp.ClientSession() as session:

            async def probe(key: ResourceKey, url: str) -> None:
                async with limit:
                    answer = await self._fetch(session, url)
                with self._lock:
                    if self._urls.get(key) != url:
                        return  # stopped watching (or moved) meanwhile
                    changed = self._observed.get(key) != answer
                    self._observed[key] = answer
                if changed:
                    self._on_change(key)

            while True:
                self._wake.clear()
                now = self._monotonic()
                with self._lock:  # the URLs due, and the new ones (never answered) at once
                    due = [(key, url) for key, url in self._urls.items()
                           if key not in self._observed or self._due.get(key, 0.0) <= now]
                    for key, _ in due:
                        self._due[key] = now + self._intervals.get(key, self._interval)
                    wake_at = min((self._due.get(key, now) for key in self._urls),
                                  default=now + self._interval)
                await asyncio.gather(*(probe(key, url) for key, url in due))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(),
                                           max(wake_at - self._monotonic(), 0.0))
