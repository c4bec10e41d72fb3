"""The worker's Prometheus metrics, aggregated over a pod's processes (docs/api.md, "Worker
metrics").

Worker processes and the sweeper record into prometheus_client's multiprocess files: the
supervisor (`worker.supervisor`) makes a private directory for them (`prepare_directory`),
hands it down as PROMETHEUS_MULTIPROC_DIR, forgets the live gauges of each process that dies
(`forget_process`; counters and histograms of dead processes stay, so totals survive
restarts), and serves the sum of all files plus its own account of its processes on
`GET /metrics` of its health port (`exposition`). Without a health port there is no
directory: the processes then count in memory, unread.

Label values are small fixed sets (never a job id): the constants below list them, and every
counter series starts at 0, so `increase()` sees the first event.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from .. import imaging
from ..errors import DependencyUnavailable
from ..rendering.pool import REPLACE_REASONS
from ..rendering.protocol import RendererCrashedError

if TYPE_CHECKING:
    from ..jobs import JobRecord

T = TypeVar("T")

CONTENT_TYPE = CONTENT_TYPE_LATEST
DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
DIRECTORY_PREFIX = "thumbnail-worker-metrics-"

# Why a job failed for good: its permanent error, or the retries ran out.
FAILURE_REASONS = (
    "missing_original", "corrupt", "unsupported", "too_large", "timeout", "crashed", "invalid",
    "retries_exhausted",
)
# Why an attempt was retried: the dependency that was unavailable, or anything unexpected.
RETRY_REASONS = ("postgresql", "redis", "minio", "unexpected")
# A worker's finished result that was not recorded: the job was deleted meanwhile, or its
# lease expired and the job went to another worker.
DISCARD_REASONS = ("deleted", "lease_lost")
DROP_REASONS = ("not_claimable", "invalid_id")
# Why the supervisor restarted a process (see `restart_cause`).
RESTART_CAUSES = ("exited", "killed", "hung", "start_failed")
# Source size classes: [lower, upper) megapixels of the original. The source, not the
# requested sizes, sets a render's cost (decoding it dominates); it is one number per job
# (a job asks for several sizes, custom WxH among them), known before rendering.
SIZE_CLASSES = (("0-1MP", 1), ("1-4MP", 4), ("4-12MP", 12), ("12-25MP", 25))
LARGEST_SIZE_CLASS = "25MP+"

RENDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

# Not registered anywhere: in a worker process nobody scrapes; the supervisor reads the files.
JOBS_FINISHED = Counter(
    "thumbnail_worker_jobs_finished_total",
    "Jobs this worker recorded as finished, by outcome and, for failures, reason class.",
    ["outcome", "reason"], registry=None,
)
RETRIES = Counter(
    "thumbnail_worker_job_retries_total",
    "Attempts that failed transiently and were scheduled for a retry, by reason class.",
    ["reason"], registry=None,
)
DISCARDED = Counter(
    "thumbnail_worker_results_discarded_total",
    "Attempts whose result was thrown away: the job was deleted or its lease lost.",
    ["reason"], registry=None,
)
DROPPED = Counter(
    "thumbnail_worker_messages_dropped_total",
    "Queue messages dropped without an attempt (duplicate or stale, or a bad job id).",
    ["reason"], registry=None,
)
RENDER_SECONDS = Histogram(
    "thumbnail_worker_render_duration_seconds",
    "Render time of a job's thumbnails (all its sizes), by output format and source size.",
    ["format", "size_class"], buckets=RENDER_BUCKETS, registry=None,
)
QUEUE_WAIT = Histogram(
    "thumbnail_worker_queue_wait_seconds",
    "From a job's submission to its first claim by a worker (PostgreSQL's clock for both).",
    buckets=WAIT_BUCKETS, registry=None,
)
ATTEMPT_SECONDS = Histogram(
    "thumbnail_worker_job_duration_seconds",
    "One attempt at a job, claim to recorded outcome (download, render, upload, record).",
    ["outcome"], buckets=DURATION_BUCKETS, registry=None,
)
IN_PROGRESS = Gauge(
    "thumbnail_worker_jobs_in_progress",
    "Jobs being processed now, summed over the live worker processes.",
    multiprocess_mode="livesum", registry=None,
)
RENDER_RESTARTS = Counter(
    "thumbnail_worker_render_process_restarts_total",
    "Render processes killed or found dead and replaced, by reason.",
    ["reason"], registry=None,
)
REENQUEUED = Counter(
    "thumbnail_worker_sweeper_reenqueued_total",
    "Jobs the sweeper queued again because their pickup deadline or lease expired.",
    registry=None,
)
ORPHANS_REMOVED = Counter(
    "thumbnail_worker_sweeper_orphans_removed_total",
    "Originals the sweeper removed because no job refers to them.",
    registry=None,
)


def _declare_series() -> None:
    """Every counter series at 0 from the start."""
    JOBS_FINISHED.labels("succeeded", "none")
    for reason in FAILURE_REASONS:
        JOBS_FINISHED.labels("failed", reason)
    for counter, reasons in (
        (RETRIES, RETRY_REASONS), (DISCARDED, DISCARD_REASONS), (DROPPED, DROP_REASONS),
        (RENDER_RESTARTS, REPLACE_REASONS),
    ):
        for reason in reasons:
            counter.labels(reason)


_declare_series()


# --- the processing path -----------------------------------------------------------------

def size_class(width: int, height: int) -> str:
    megapixels = width * height / 1_000_000
    return next((name for name, upper in SIZE_CLASSES if megapixels < upper), LARGEST_SIZE_CLASS)


def failure_reason(exc: BaseException) -> str:
    """The reason class of a permanent error (`processor.PERMANENT_ERRORS`)."""
    # Imported here: the supervisor imports this module and needs no S3 client.
    from ..storage import ObjectNotFound

    classes: tuple[tuple[type[BaseException], str], ...] = (
        (ObjectNotFound, "missing_original"),
        (imaging.CorruptImageError, "corrupt"),
        (imaging.UnsupportedFormatError, "unsupported"),
        (imaging.ImageTooLargeError, "too_large"),
        (imaging.ProcessingTimeoutError, "timeout"),
        (RendererCrashedError, "crashed"),
    )
    return next((reason for cls, reason in classes if isinstance(exc, cls)), "invalid")


def retry_reason(exc: BaseException) -> str:
    if isinstance(exc, DependencyUnavailable) and exc.dependency in RETRY_REASONS:
        return exc.dependency
    return "unexpected"


class Attempt:
    """One claimed attempt at a job; the processor says how it ended: succeeded, failed,
    retried or discarded (else "error": an exception left the attempt, e.g. PostgreSQL down
    while recording the outcome)."""

    def __init__(self) -> None:
        self.outcome = "error"

    def succeeded(self) -> None:
        JOBS_FINISHED.labels("succeeded", "none").inc()
        self.outcome = "succeeded"

    def failed(self, reason: str) -> None:
        JOBS_FINISHED.labels("failed", reason).inc()
        self.outcome = "failed"

    def retried(self, reason: str) -> None:
        RETRIES.labels(reason).inc()
        self.outcome = "retried"

    def discarded(self, reason: str) -> None:
        DISCARDED.labels(reason).inc()
        self.outcome = "discarded"


@contextmanager
def attempt(job: JobRecord) -> Iterator[Attempt]:
    """Around the work on a job just claimed: its queue wait (first claim only: a retry's
    wait is mostly its deliberate backoff), in progress while inside, then its duration."""
    if job.attempts == 1 and job.started_at is not None:
        QUEUE_WAIT.observe(max((job.started_at - job.created_at).total_seconds(), 0.0))
    current = Attempt()
    IN_PROGRESS.inc()
    started = time.perf_counter()
    try:
        yield current
    finally:
        IN_PROGRESS.dec()
        ATTEMPT_SECONDS.labels(current.outcome).observe(time.perf_counter() - started)


def timed_call(fn: Callable[[], T]) -> tuple[T, float]:
    """`fn()` and how long it took: run in the render thread, so that waiting for a free
    thread does not count as rendering."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def rendered(job: JobRecord, thumbnails: Sequence[imaging.Thumbnail], seconds: float) -> None:
    output = thumbnails[0].format.value if thumbnails else job.options.format.value
    RENDER_SECONDS.labels(output, size_class(job.original_width, job.original_height)).observe(
        seconds
    )


def message_dropped(reason: str) -> None:
    DROPPED.labels(reason).inc()


def render_process_replaced(reason: str) -> None:
    RENDER_RESTARTS.labels(reason).inc()


def jobs_reenqueued(count: int) -> None:
    REENQUEUED.inc(count)


def orphans_removed(count: int) -> None:
    ORPHANS_REMOVED.inc(count)


# --- the supervisor ------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcessState:
    """What the supervisor knows of one supervised process, for `exposition`."""

    name: str
    ready: bool
    restarts: Mapping[str, int]  # by cause


def restart_cause(code: int | None, hung: bool) -> str:
    """Why a process is restarted: it could not start (`code` None), was killed by the
    supervisor for missing heartbeats, was killed by a signal (SIGKILL: often the OOM
    killer), or exited by itself."""
    if code is None:
        return "start_failed"
    if hung:
        return "hung"
    return "killed" if code < 0 else "exited"


def prepare_directory(root: Path | None = None) -> Path:
    """A new, empty, private (0700) directory `<tmp>/thumbnail-worker-metrics-<our pid>`.

    First removes what an earlier supervisor left: a directory with our own pid (in a
    container the supervisor is always PID 1, and /tmp, an emptyDir, outlives a container
    restart) or the pid of a process that is gone (a SIGKILLed supervisor outside one). Only
    directories of ours are touched. Raises OSError if it cannot be made."""
    root = Path(tempfile.gettempdir()) if root is None else root
    me = os.getpid()
    for old in root.glob(f"{DIRECTORY_PREFIX}*"):
        pid = old.name.removeprefix(DIRECTORY_PREFIX)
        if not pid.isdigit() or (int(pid) != me and _running(int(pid))):
            continue
        try:
            info = old.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
            shutil.rmtree(old, ignore_errors=True)
    path = root / f"{DIRECTORY_PREFIX}{me}"
    path.mkdir(mode=0o700)
    return path


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    return True


def remove_directory(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def forget_process(directory: Path, pid: int) -> None:
    """A process died: drop its live gauges (its counters and histograms stay counted)."""
    mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


class _Supervised:
    def __init__(self, processes: Iterable[ProcessState]) -> None:
        self._processes = list(processes)

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "thumbnail_worker_process_restarts",
            "Supervised processes (worker-N, sweeper) the supervisor restarted, by cause.",
            labels=["process", "cause"],
        )
        ready = GaugeMetricFamily(
            "thumbnail_worker_process_ready",
            "1 while the supervised process is up and beating (as /readyz counts it).",
            labels=["process"],
        )
        for process in self._processes:
            for cause in RESTART_CAUSES:
                restarts.add_metric([process.name, cause], process.restarts.get(cause, 0))
            ready.add_metric([process.name], 1 if process.ready else 0)
        yield restarts
        yield ready


def exposition(directory: Path | None, processes: Iterable[ProcessState]) -> bytes:
    """The text exposition of every process's files in `directory` and the supervisor's own
    metrics of its `processes`."""
    registry = CollectorRegistry()
    if directory is not None:
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(_Supervised(processes))
    return generate_latest(registry)
