"""The worker's metrics module (worker/metrics.py) without servers: the label classes, the
directory the supervisor prepares, and the multiprocess sums over real processes that record,
die and are replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from tests.service.scrape import Scrape
from thumbnail_service import imaging
from thumbnail_service.errors import DependencyUnavailable
from thumbnail_service.jobs import JobOptions, JobRecord, JobStatus, Size
from thumbnail_service.rendering.protocol import RendererCrashedError
from thumbnail_service.storage import ObjectNotFound
from thumbnail_service.worker import metrics

FINISHED = "thumbnail_worker_jobs_finished_total"


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1, 1, "0-1MP"),
        (999, 1000, "0-1MP"),
        (1000, 1000, "1-4MP"),  # classes include their lower bound
        (2000, 1999, "1-4MP"),
        (2000, 2000, "4-12MP"),
        (4000, 3000, "12-25MP"),  # a 12 MP phone photo
        (5000, 4999, "12-25MP"),
        (5000, 5000, "25MP+"),
        (10000, 5000, "25MP+"),
    ],
)
def test_size_class_by_source_megapixels(width: int, height: int, expected: str) -> None:
    assert metrics.size_class(width, height) == expected
    assert metrics.size_class(height, width) == expected  # orientation does not matter


def test_size_classes_are_the_documented_bounded_set() -> None:
    names = [name for name, _ in metrics.SIZE_CLASSES] + [metrics.LARGEST_SIZE_CLASS]
    assert names == ["0-1MP", "1-4MP", "4-12MP", "12-25MP", "25MP+"]
    uppers = [upper for _, upper in metrics.SIZE_CLASSES]
    assert uppers == sorted(uppers)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ObjectNotFound("NoSuchKey"), "missing_original"),
        (imaging.CorruptImageError("truncated"), "corrupt"),
        (imaging.UnsupportedFormatError("bmp"), "unsupported"),
        (imaging.ImageTooLargeError("too many pixels"), "too_large"),
        (imaging.ProcessingTimeoutError("30 s"), "timeout"),
        (RendererCrashedError("SIGSEGV"), "crashed"),
        (imaging.ImagingError("anything else"), "invalid"),
    ],
)
def test_failure_reason_classes(exc: Exception, reason: str) -> None:
    assert metrics.failure_reason(exc) == reason
    assert reason in metrics.FAILURE_REASONS


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (DependencyUnavailable("postgresql", "down"), "postgresql"),
        (DependencyUnavailable("redis", "down"), "redis"),
        (DependencyUnavailable("minio", "down"), "minio"),
        (DependencyUnavailable("something-new", "down"), "unexpected"),
        (RuntimeError("renderer: KeyError"), "unexpected"),
    ],
)
def test_retry_reason_classes(exc: Exception, reason: str) -> None:
    assert metrics.retry_reason(exc) == reason


def test_restart_causes() -> None:
    assert metrics.restart_cause(None, hung=False) == "start_failed"
    assert metrics.restart_cause(-signal.SIGKILL, hung=True) == "hung"  # we killed it
    assert metrics.restart_cause(-signal.SIGKILL, hung=False) == "killed"
    assert metrics.restart_cause(-signal.SIGSEGV, hung=False) == "killed"
    assert metrics.restart_cause(1, hung=False) == "exited"
    assert metrics.restart_cause(0, hung=False) == "exited"


def job(attempts: int, waited: float) -> JobRecord:
    created = datetime(2025, 1, 1, tzinfo=UTC)
    return JobRecord(
        id=uuid4(), status=JobStatus.PROCESSING, created_at=created, updated_at=created,
        started_at=created + timedelta(seconds=waited), finished_at=None, attempts=attempts,
        error=None, idempotency_key=None, request_fingerprint="x",
        options=JobOptions(sizes=[Size(name="small", width=128, height=128)]),
        original_key="k", original_format="png", original_width=3000, original_height=2000,
        original_bytes=1, lease_token=uuid4(),
    )


def collected(metric: object) -> Scrape:
    """One metric object of this (non-multiprocess) pytest process, as a scrape."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(metric)  # type: ignore[arg-type]
    return Scrape(generate_latest(registry).decode())


def test_an_attempt_observes_its_first_queue_wait_and_its_outcome() -> None:
    waits = collected(metrics.QUEUE_WAIT).value("thumbnail_worker_queue_wait_seconds_count")
    durations = collected(metrics.ATTEMPT_SECONDS)
    with metrics.attempt(job(attempts=1, waited=2.5)) as attempt:
        assert collected(metrics.IN_PROGRESS).value("thumbnail_worker_jobs_in_progress") == 1
        attempt.failed("corrupt")
    with metrics.attempt(job(attempts=2, waited=100)):  # a retry: its wait is its backoff
        pass
    with pytest.raises(RuntimeError), metrics.attempt(job(attempts=1, waited=0)):
        raise RuntimeError("PostgreSQL went away while recording")
    assert collected(metrics.IN_PROGRESS).value("thumbnail_worker_jobs_in_progress") == 0
    after = collected(metrics.QUEUE_WAIT)
    assert after.value("thumbnail_worker_queue_wait_seconds_count") == waits + 2
    assert after.value("thumbnail_worker_queue_wait_seconds_bucket", le="2.5") >= 1
    durations_after = collected(metrics.ATTEMPT_SECONDS)
    name = "thumbnail_worker_job_duration_seconds_count"
    for outcome, more in (("failed", 1), ("error", 2), ("succeeded", 0)):
        assert durations_after.total(name, outcome=outcome) == (
            durations.total(name, outcome=outcome) + more
        ), outcome


def test_a_render_is_labelled_by_the_format_made_and_the_source_size() -> None:
    thumb = imaging.Thumbnail(
        name="small", width=128, height=85, format=imaging.OutputFormat.WEBP,
        content_type="image/webp", data=b"x",
    )
    before = collected(metrics.RENDER_SECONDS)
    metrics.rendered(job(attempts=1, waited=0), [thumb], 0.3)
    after = collected(metrics.RENDER_SECONDS)
    name = "thumbnail_worker_render_duration_seconds_count"
    labels = {"format": "webp", "size_class": "4-12MP"}  # 3000 x 2000
    assert after.value(name, **labels) == before.total(name, **labels) + 1


# --- the supervisor's directory ------------------------------------------------------------

def test_prepare_directory_makes_a_private_one_and_clears_what_dead_supervisors_left(
    tmp_path: Path,
) -> None:
    dead_pid = 4_194_305  # above the largest pid_max Linux allows: no such process
    own = tmp_path / f"{metrics.DIRECTORY_PREFIX}{os.getpid()}"  # a restarted PID 1's
    stale = tmp_path / f"{metrics.DIRECTORY_PREFIX}{dead_pid}"
    live = tmp_path / f"{metrics.DIRECTORY_PREFIX}{os.getppid()}"  # another live supervisor
    other = tmp_path / f"{metrics.DIRECTORY_PREFIX}notes"
    for path in (own, stale, live, other):
        path.mkdir()
        (path / "counter_7.db").write_bytes(b"old")
    link_target = tmp_path / "not-ours"
    link_target.mkdir()
    (link_target / "keep").write_text("x")
    # A symlink with a dead pid's name is never followed.
    symlink = tmp_path / f"{metrics.DIRECTORY_PREFIX}{dead_pid + 1}"
    symlink.symlink_to(link_target)

    path = metrics.prepare_directory(tmp_path)

    assert path == own and path.is_dir() and list(path.iterdir()) == []
    assert path.stat().st_mode & 0o777 == 0o700
    assert not stale.exists()
    assert (live / "counter_7.db").exists() and (other / "counter_7.db").exists()
    assert symlink.is_symlink() and (link_target / "keep").exists()


def test_prepare_directory_fails_when_it_cannot_make_one(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        metrics.prepare_directory(tmp_path / "missing" / "deeper")


# --- multiprocess: real processes record, die and are replaced -----------------------------

RECORDER = """
import sys, time
from thumbnail_service.worker import metrics
for _ in range(int(sys.argv[1])):
    metrics.Attempt().succeeded()
metrics.Attempt().failed("corrupt")
metrics.render_process_replaced("died_idle")
metrics.IN_PROGRESS.inc()  # a job in hand when it is killed
print("recorded", flush=True)
time.sleep(60)
"""


@pytest.fixture
def recorders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def record(directory: Path, succeeded: int, started: list[subprocess.Popen[str]]) -> int:
    env = {**os.environ, metrics.DIRECTORY_VARIABLE: str(directory)}
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(succeeded)], env=env,
                            stdout=subprocess.PIPE, text=True)
    started.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "recorded\n"  # bounded: the process sleeps 60 s at most
    return proc.pid


def test_totals_sum_over_processes_and_survive_their_deaths(
    tmp_path: Path, recorders: list[subprocess.Popen[str]]
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()

    def scrape() -> Scrape:
        states = [metrics.ProcessState("worker-0", True, {"killed": 1})]
        return Scrape(metrics.exposition(directory, states).decode())

    first = record(directory, 3, recorders)
    record(directory, 4, recorders)
    before = scrape()
    assert before.value(FINISHED, outcome="succeeded", reason="none") == 7
    assert before.value(FINISHED, outcome="failed", reason="corrupt") == 2
    assert before.value(FINISHED, outcome="failed", reason="timeout") == 0  # declared at 0
    assert before.value("thumbnail_worker_render_process_restarts_total",
                        reason="died_idle") == 2
    assert before.value("thumbnail_worker_jobs_in_progress") == 2

    os.kill(first, signal.SIGKILL)
    recorders[0].wait()
    metrics.forget_process(directory, first)
    record(directory, 1, recorders)  # its replacement
    after = scrape()
    assert before.went_backwards(after) == []
    assert after.value(FINISHED, outcome="succeeded", reason="none") == 8
    assert after.value("thumbnail_worker_jobs_in_progress") == 2  # the dead one's is gone
    # The supervisor's own metrics come along.
    assert after.value("thumbnail_worker_process_restarts_total",
                       process="worker-0", cause="killed") == 1
    assert after.value("thumbnail_worker_process_restarts_total",
                       process="worker-0", cause="hung") == 0
    assert after.value("thumbnail_worker_process_ready", process="worker-0") == 1


def test_without_a_directory_only_the_supervisors_metrics_are_served() -> None:
    scrape = Scrape(metrics.exposition(None, [metrics.ProcessState("sweeper", False, {})])
                    .decode())
    assert scrape.value("thumbnail_worker_process_ready", process="sweeper") == 0
    assert scrape.total(FINISHED) == 0
