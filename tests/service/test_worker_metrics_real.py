"""Workers expose Prometheus metrics: `GET /metrics` on the supervisor's health port, summed
over the pod's processes (worker/metrics.py).

The real `thumbnail-worker` with two worker processes (one thread each) and a sweeper, jobs
submitted through the real API, and the real PostgreSQL, Redis and MinIO. Each test starts a
worker of its own, so that its counters start at 0, and checks values against what the API
says happened: jobs by outcome and reason, render and queue-wait histograms, retries (MinIO
frozen), the processes' restarts, render-process restarts, jobs in progress; and that a
SIGKILLed worker process takes none of its counts with it.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from minio import Minio
from prometheus_client.multiprocess import MultiProcessCollector

from tests.service import images
from tests.service.faults import Batch
from tests.service.scrape import Scrape
from tests.service.stack import Stack, wait_for
from tests.service.test_processing_real import submit, wait_finished
from tests.service.test_worker_faults_real import processes, render_children
from thumbnail_service.worker.metrics import DIRECTORY_PREFIX
from thumbnail_substrate.process import free_port

pytestmark = pytest.mark.services
HEALTH_PORT = free_port()
SERVICE_ENV = {
    "THUMBNAIL_WORKER_PROCESSES": "2",
    "THUMBNAIL_WORKER_THREADS": "1",
    "THUMBNAIL_WORKER_HEARTBEAT_SECONDS": "0.5",
    "THUMBNAIL_WORKER_HEALTH_PORT": str(HEALTH_PORT),
    "THUMBNAIL_JOB_TIMEOUT_SECONDS": "60",
}
FINISHED = "thumbnail_worker_jobs_finished_total"
RETRIES = "thumbnail_worker_job_retries_total"
RESTARTS = "thumbnail_worker_process_restarts_total"
RENDER_RESTARTS = "thumbnail_worker_render_process_restarts_total"
RENDERS = "thumbnail_worker_render_duration_seconds_count"
WAITS = "thumbnail_worker_queue_wait_seconds_count"
ATTEMPTS = "thumbnail_worker_job_duration_seconds_count"
IN_PROGRESS = "thumbnail_worker_jobs_in_progress"
PNG = images.encode(images.two_halves(640, 480), "png")  # 0.3 MP
JPEG = images.encode(images.two_halves(1600, 1200), "jpg")  # 1.9 MP
WHOLE = images.encode(images.noise(800, 600), "jpg", Q=95)
TRUNCATED = WHOLE[: len(WHOLE) // 3]  # its header passes the API, its render fails
# About 2 s of AVIF encoding per job: both worker processes are busy when one is killed.
SLOW = images.encode(images.noise(2000, 1500), "jpg", Q=90)


def scrape() -> Scrape:
    response = httpx.get(f"http://127.0.0.1:{HEALTH_PORT}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Scrape(response.text)


def fresh_worker(stack: Stack) -> int:
    """Stops the workers there are and starts one (its counters start at 0); its pid once
    every process beats."""
    for worker in stack.workers:
        worker.stop()
    worker = stack.start_worker()
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{HEALTH_PORT}/readyz", timeout=5)
             .status_code == 200, timeout=60, what="/readyz of the new worker")
    return worker.pid


def finish_all(client: httpx.Client, stack: Stack, ids: list[str]) -> list[Any]:
    return [wait_finished(client, job_id, stack, timeout=90) for job_id in ids]


def per_process_succeeded(directory: Path) -> dict[int, float]:
    """Jobs succeeded by each process, read from its own file (what the scrape sums)."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        counts[pid] = sum(
            sample.value
            for metric in MultiProcessCollector.merge([str(path)])
            for sample in metric.samples
            if sample.name == FINISHED and sample.labels.get("outcome") == "succeeded"
        )
    return counts


def test_outcomes_and_histograms_are_counted_once_summed_over_the_processes(
    stack: Stack, client: httpx.Client, service_env: dict[str, str]
) -> None:
    supervisor = fresh_worker(stack)
    directory = Path(service_env["TMPDIR"]) / f"{DIRECTORY_PREFIX}{supervisor}"
    assert directory.is_dir() and directory.stat().st_mode & 0o777 == 0o700
    start = scrape()
    assert start.total(FINISHED) == 0 and start.total(RESTARTS) == 0
    assert start.value(FINISHED, outcome="failed", reason="corrupt") == 0  # there from 0
    for name in ("worker-0", "worker-1", "sweeper"):
        assert start.value("thumbnail_worker_process_ready", process=name) == 1

    good = (
        [submit(client, PNG, sizes="small,medium", format="png")["id"] for _ in range(6)]
        + [submit(client, JPEG, sizes="small", format="webp")["id"] for _ in range(4)]
        + [submit(client, JPEG, sizes="small")["id"] for _ in range(2)]  # auto: jpeg
    )
    bad = [submit(client, TRUNCATED, sizes="small")["id"] for _ in range(2)]
    jobs = finish_all(client, stack, good + bad)
    assert [j["status"] for j in jobs] == ["succeeded"] * len(good) + ["failed"] * len(bad)
    assert all("corrupt" in j["error"] or "truncated" in j["error"] for j in jobs[len(good):])

    done = scrape()
    print(f"\n[metrics after {len(good)} good and {len(bad)} corrupt jobs]\n" + "\n".join(
        line for line in done.text.splitlines()
        if line.startswith(("thumbnail_worker_jobs_", "thumbnail_worker_queue_wait_seconds_c",
                            "thumbnail_worker_render_duration_seconds_c"))
    ))
    assert done.value(FINISHED, outcome="succeeded", reason="none") == len(good)
    assert done.value(FINISHED, outcome="failed", reason="corrupt") == len(bad)
    assert done.total(FINISHED) == len(good) + len(bad)
    assert done.total(RETRIES) == 0
    assert done.value(IN_PROGRESS) == 0
    # One render observation per successful job, by the format it made and the source size.
    assert done.value(RENDERS, format="png", size_class="0-1MP") == 6
    assert done.value(RENDERS, format="webp", size_class="1-4MP") == 4
    assert done.value(RENDERS, format="jpeg", size_class="1-4MP") == 2
    assert done.total(RENDERS) == len(good)
    # Every job's first claim waited in the queue, failed ones too.
    assert done.value(WAITS) == len(good) + len(bad)
    assert done.value(ATTEMPTS, outcome="succeeded") == len(good)
    assert done.value(ATTEMPTS, outcome="failed") == len(bad)
    assert done.total(RENDER_RESTARTS) == 0  # a corrupt image is an answer, not a crash
    # The sum is over the processes' own files: here both worker processes did work.
    per_process = per_process_succeeded(directory)
    workers = processes(supervisor, "consumer")
    assert sum(per_process.values()) == len(good), per_process
    assert {pid for pid, n in per_process.items() if n} <= workers, (per_process, workers)
    assert sum(1 for n in per_process.values() if n) == 2, per_process

    # A render process found dead (as after an OOM kill while idle) is replaced and counted.
    renderers = render_children(supervisor)
    assert len(renderers) == 2, renderers
    for pid in renderers:
        os.kill(pid, signal.SIGKILL)
    later = wait_finished(client, submit(client, PNG, sizes="small")["id"], stack)
    assert later["status"] == "succeeded", later
    replaced = scrape()
    # Only the process that took the job noticed its renderer gone.
    assert replaced.value(RENDER_RESTARTS, reason="died_idle") == 1
    assert replaced.total(RENDER_RESTARTS) == 1
    assert replaced.value(FINISHED, outcome="succeeded", reason="none") == len(good) + 1
    assert done.went_backwards(replaced) == []


def test_a_sigkilled_worker_process_takes_no_counts_with_it(
    stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str]
) -> None:
    supervisor = fresh_worker(stack)
    warm_up = [submit(client, PNG, sizes="small")["id"] for _ in range(4)]
    assert all(j["status"] == "succeeded" for j in finish_all(client, stack, warm_up))

    batch = Batch(stack)
    batch.submit(client, SLOW, 6, sizes="medium", format="avif")
    busy = wait_for(lambda: (s := scrape()).value(IN_PROGRESS) == 2 and s, timeout=60,
                    what="both worker processes on a job")
    victim = min(processes(supervisor, "consumer"))
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    replaced = wait_for(
        lambda: (s := scrape()).value(RESTARTS, process="worker-0", cause="killed")
        + s.value(RESTARTS, process="worker-1", cause="killed") == 1 and s,
        timeout=30, what="the supervisor to count the restart",
    )
    took = time.monotonic() - killed
    assert busy.went_backwards(replaced) == [], "counts went backwards with the process"
    assert replaced.total(RESTARTS) == 1
    assert replaced.value(IN_PROGRESS) <= 2
    wait_for(lambda: httpx.get(f"http://127.0.0.1:{HEALTH_PORT}/readyz", timeout=5)
             .status_code == 200, timeout=30, what="/readyz after the restart")

    jobs = batch.settle(client, s3, service_env["THUMBNAIL_BUCKET_THUMBNAILS"])
    assert all(j["status"] == "succeeded" for j in jobs), jobs
    attempts = Counter(j["attempts"] for j in jobs)
    final = scrape()
    print(f"\n[worker process SIGKILLed] restart counted {took:.2f}s after the kill; "
          f"attempts per job {dict(attempts)}; "
          f"re-enqueued {final.value('thumbnail_worker_sweeper_reenqueued_total'):g}")
    assert replaced.went_backwards(final) == []
    assert final.value(FINISHED, outcome="succeeded", reason="none") == len(warm_up) + len(jobs)
    assert final.total(FINISHED) == len(warm_up) + len(jobs)
    # The job in the victim's hands ran again (a second claim); the victim's "in progress"
    # went with it instead of staying 1 for ever.
    assert attempts[2] >= 1, attempts
    assert final.value(IN_PROGRESS) == 0
    assert final.value("thumbnail_worker_sweeper_reenqueued_total") >= 1
    assert final.value(ATTEMPTS, outcome="succeeded") == len(warm_up) + len(jobs)
    assert final.value(WAITS) == len(warm_up) + len(jobs)  # first claims only
    assert final.total(RESTARTS) == 1


def test_retries_are_counted_by_the_dependency_that_failed(
    stack: Stack, client: httpx.Client, minio_server: Any
) -> None:
    """MinIO frozen while the job is picked up: its download times out (3 s), the attempt is
    retried (reason minio) until MinIO answers again."""
    for worker in stack.workers:
        worker.stop()
    job = submit(client, PNG, sizes="small")  # waits in the queue: no worker yet
    minio_server.pause()
    try:
        fresh_worker(stack)
        retried = wait_for(lambda: (s := scrape()).value(RETRIES, reason="minio") >= 1 and s,
                           timeout=60, what="a retry because of MinIO")
    finally:
        minio_server.resume()
    done = wait_finished(client, job["id"], stack, timeout=60)
    final = scrape()
    assert done["status"] == "succeeded" and done["attempts"] >= 2, done
    assert retried.went_backwards(final) == []
    assert final.value(RETRIES, reason="minio") == done["attempts"] - 1
    assert final.total(RETRIES) == done["attempts"] - 1
    assert final.value(ATTEMPTS, outcome="retried") == done["attempts"] - 1
    assert final.value(FINISHED, outcome="succeeded", reason="none") == 1
    assert final.value(WAITS) == 1
