"""Dead and hung workers are replaced and reported (issue #13, finding 1).

`thumbnail-worker` is a supervisor of two worker processes and a sweeper here. A worker
process SIGKILLed mid-batch is replaced while the other and the sweeper carry on; a render
process SIGKILLed mid-job fails that job (as an OOM kill would) and is replaced; a worker
process that hangs (SIGSTOP) stops beating and is replaced; a whole worker that dies is
reported by the API (`workers.alive` 0, the oldest waiting job's age) until a new one takes
over. Every batch finishes with no job lost and none processed twice. Measured times are
printed (`pytest -s`).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from minio import Minio

from tests.service import images
from tests.service.faults import LIMIT_SECONDS, Batch, seconds_until
from tests.service.stack import Stack
from tests.service.test_processing_real import submit, wait_finished
from thumbnail_substrate.process import free_port
from thumbnail_substrate.process_tree import children_of

pytestmark = pytest.mark.services
HEARTBEAT = 0.5
HEALTH_PORT = free_port()
SERVICE_ENV = {
    "THUMBNAIL_WORKER_PROCESSES": "2",
    "THUMBNAIL_WORKER_THREADS": "1",
    "THUMBNAIL_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT),
    "THUMBNAIL_WORKER_HEALTH_PORT": str(HEALTH_PORT),
    "THUMBNAIL_JOB_TIMEOUT_SECONDS": "60",
}
DEAD_AFTER = 3 * HEARTBEAT  # three missed heartbeats
# About 0.3 s of work per job: a batch is still in flight when the fault hits.
BATCH_IMAGE = images.encode(images.noise(2000, 1500), "jpg", Q=90)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def processes(supervisor_pid: int, module: str) -> set[int]:
    """The supervisor's children running `thumbnail_service.worker.<module>`."""
    return {p for p in children_of(supervisor_pid) if f"worker.{module} " in cmdline(p)}


def render_children(supervisor_pid: int) -> set[int]:
    return {
        child
        for worker in processes(supervisor_pid, "consumer")
        for child in children_of(worker)
        if "rendering.child" in cmdline(child)
    }


def health(stack: Stack, **params: str) -> httpx.Response:
    return httpx.get(f"{stack.base_url}/healthz/detailed", params=params, timeout=10)


def alive(stack: Stack) -> int | None:
    alive_now: int | None = health(stack).json()["workers"]["alive"]
    return alive_now


def probe(path: str) -> int:
    return httpx.get(f"http://127.0.0.1:{HEALTH_PORT}{path}", timeout=5).status_code


def fresh_worker(stack: Stack) -> int:
    """Stops the workers there are, starts one; returns its (the supervisor's) pid once both
    worker processes beat."""
    for worker in stack.workers:
        worker.stop()
    worker = stack.start_worker()
    took = seconds_until(lambda: alive(stack) == 2, timeout=60)
    print(f"\n[worker start] both worker processes alive {took:.2f}s after the start")
    return worker.pid


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def processing(client: httpx.Client, batch: Batch) -> bool:
    return any(client.get(f"/v1/jobs/{i}").json()["status"] == "processing" for i in batch.ids)


@pytest.fixture
def bucket(service_env: dict[str, str]) -> str:
    return service_env["THUMBNAIL_BUCKET_THUMBNAILS"]


def test_live_workers_are_counted_and_the_supervisor_serves_probes(
    stack: Stack, client: httpx.Client
) -> None:
    fresh_worker(stack)
    body = health(stack).json()
    finished = body["workers"].pop("jobs_finished_last_5m")  # earlier tests' jobs count too
    assert isinstance(finished, int) and finished >= 0, body
    demand = body["workers"].pop("demand")  # earlier tests' jobs taught costs
    assert all(f["pending_jobs"] == 0 for f in demand["formats"]), demand
    assert body["workers"] == {
        "status": "ok", "alive": 2, "oldest_queued_job_age_seconds": None,
        "oldest_queued_job_since": None, "queued_jobs": 0,
    }, body
    assert probe("/healthz") == 200
    # Ready once every process beats, the sweeper too (its first beat may follow the worker
    # processes' by a moment under load).
    wait_until(lambda: probe("/readyz") == 200, timeout=10, what="/readyz 200")
    ready = httpx.get(f"http://127.0.0.1:{HEALTH_PORT}/readyz", timeout=5).json()
    assert set(ready["processes"]) == {"worker-0", "worker-1", "sweeper"}
    metrics = client.get("/metrics").text
    assert re.search(r"^thumbnail_workers_alive 2\.0$", metrics, re.M), metrics
    assert re.search(r"^thumbnail_oldest_queued_job_age_seconds 0\.0$", metrics, re.M)


def test_sigkilled_worker_process_is_replaced_mid_batch_and_nothing_is_lost(
    stack: Stack, client: httpx.Client, s3: Minio, bucket: str
) -> None:
    supervisor = fresh_worker(stack)
    (sweeper,) = processes(supervisor, "sweeper")
    batch = Batch(stack)
    batch.submit(client, BATCH_IMAGE, 10, sizes="small,medium")
    wait_until(lambda: processing(client, batch), 30, "a job in processing")
    in_flight = batch.in_flight(client)
    victim = min(processes(supervisor, "consumer"))
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    replaced = seconds_until(
        lambda: len(processes(supervisor, "consumer") - {victim}) == 2, timeout=30
    )
    ready = replaced + seconds_until(lambda: probe("/readyz") == 200, timeout=30)
    time.sleep(max(0.0, killed + DEAD_AFTER - time.monotonic()))  # the victim's beat expires
    counted = seconds_until(lambda: alive(stack) == 2, timeout=30)
    jobs = batch.settle(client, s3, bucket)
    print(f"\n[worker process SIGKILLed] replaced after {replaced:.2f}s, the new one beating "
          f"(/readyz 200) after {ready:.2f}s, counted in /healthz/detailed {counted:.2f}s "
          f"after the victim's last beat expired; {len(jobs)} jobs, {in_flight} in flight at "
          f"the kill, all finished once {time.monotonic() - killed:.2f}s after it")
    assert stack.workers[-1].alive, "the whole worker died with one of its processes"
    assert processes(supervisor, "sweeper") == {sweeper}, "the sweeper was lost"
    assert replaced <= LIMIT_SECONDS
    assert all(j["status"] == "succeeded" for j in jobs), jobs
    log = stack.workers[-1].log.read_text()
    assert f"(pid {victim}) killed by SIGKILL" in log


def test_sigkilled_render_processes_fail_their_jobs_only_and_are_replaced(
    stack: Stack, client: httpx.Client, s3: Minio, bucket: str
) -> None:
    """A render process killed mid-job (as by the OOM killer) fails that job at once and
    for good (the documented outcome: "the decoder crashed"); every other job succeeds."""
    supervisor = fresh_worker(stack)
    batch = Batch(stack)
    batch.submit(client, BATCH_IMAGE, 8, sizes="small,medium")
    wait_until(lambda: processing(client, batch), 30, "a job in processing")
    in_flight = batch.in_flight(client)
    renderers = render_children(supervisor)
    assert renderers, "no render processes found"
    for pid in renderers:
        os.kill(pid, signal.SIGKILL)
    jobs = batch.settle(client, s3, bucket)
    failed = [j for j in jobs if j["status"] == "failed"]
    print(f"\n[render processes SIGKILLed] {len(renderers)} killed, {len(failed)} job(s) "
          f"failed with them, {len(jobs) - len(failed)} succeeded; {in_flight} in flight")
    assert len(failed) <= len(renderers), failed
    for job in failed:
        assert "crashed" in job["error"] and "SIGKILL" in job["error"], job["error"]
        assert job["attempts"] == 1
    assert len(jobs) - len(failed) >= len(jobs) - len(renderers)
    assert render_children(supervisor).isdisjoint(renderers)
    later = wait_finished(client, submit(client, BATCH_IMAGE, sizes="small")["id"], stack)
    assert later["status"] == "succeeded", later


def test_hung_worker_process_is_killed_and_replaced(
    stack: Stack, client: httpx.Client, s3: Minio, bucket: str
) -> None:
    supervisor = fresh_worker(stack)
    batch = Batch(stack)
    batch.submit(client, BATCH_IMAGE, 6, sizes="small,medium")
    wait_until(lambda: processing(client, batch), 30, "a job in processing")
    in_flight = batch.in_flight(client)
    hung = min(processes(supervisor, "consumer"))
    os.kill(hung, signal.SIGSTOP)  # alive, holding its job, silent
    try:
        unready = seconds_until(lambda: probe("/readyz") == 503, timeout=15)
        replaced = seconds_until(
            lambda: hung not in processes(supervisor, "consumer")
            and len(processes(supervisor, "consumer")) == 2,
            timeout=30,
        )
    finally:
        if hung in processes(supervisor, "consumer"):
            os.kill(hung, signal.SIGCONT)
    ready = seconds_until(lambda: probe("/readyz") == 200 and alive(stack) == 2, timeout=30)
    jobs = batch.settle(client, s3, bucket)
    print(f"\n[worker process SIGSTOPped] /readyz 503 after {unready:.2f}s, killed and "
          f"replaced after {unready + replaced:.2f}s, ready again {ready:.2f}s later; "
          f"{len(jobs)} jobs, {in_flight} in flight, all finished once")
    assert unready + replaced <= DEAD_AFTER + LIMIT_SECONDS
    assert all(j["status"] == "succeeded" for j in jobs), jobs
    assert "sent no heartbeat" in stack.workers[-1].log.read_text()


def test_dead_worker_is_reported_and_a_new_one_takes_over(
    stack: Stack, client: httpx.Client
) -> None:
    fresh_worker(stack)
    stack.workers[-1].kill()  # SIGKILL of the whole pod's processes: no goodbye
    gone = seconds_until(lambda: alive(stack) == 0, timeout=30)
    job = submit(client, images.encode(images.two_halves(100, 100), "png"), sizes="small")
    time.sleep(1.2)
    reported = health(stack)
    strict = health(stack, require_workers="true")
    metrics = client.get("/metrics").text
    print(f"\n[whole worker SIGKILLed] alive 0 after {gone:.2f}s: {reported.json()['message']}")
    assert gone <= DEAD_AFTER + LIMIT_SECONDS
    assert reported.status_code == 200  # the API itself is ready: it still takes jobs
    workers = reported.json()["workers"]
    assert workers["status"] == "none" and workers["alive"] == 0, workers
    assert workers["oldest_queued_job_age_seconds"] >= 1.0, workers
    # The submission time of that same job: what the operator stores in its status.
    assert workers["oldest_queued_job_since"] == job["created_at"], (workers, job)
    assert workers["queued_jobs"] == 1, workers  # the backlog
    # What the autoscaler sizes from: the pending job's cost units (0.01 MP x one size).
    pending = {f["format"]: f for f in workers["demand"]["formats"] if f["pending_jobs"]}
    assert list(pending) == ["auto"], workers["demand"]
    assert pending["auto"]["pending_jobs"] == 1
    assert pending["auto"]["pending_megapixel_renders"] == pytest.approx(0.01), pending
    assert "no live worker" in reported.json()["message"]
    assert strict.status_code == 503 and strict.json()["status"] == "unavailable"
    assert re.search(r"^thumbnail_workers_alive 0\.0$", metrics, re.M)
    age = re.search(r"^thumbnail_oldest_queued_job_age_seconds (\S+)$", metrics, re.M)
    assert age and float(age.group(1)) >= 1.0, metrics

    stack.start_worker()
    done = wait_finished(client, job["id"], stack)
    assert done["status"] == "succeeded", done
    after = health(stack).json()["workers"]
    # The backlog drained, and the job counts in the recent throughput.
    assert after["queued_jobs"] == 0, after
    assert after["jobs_finished_last_5m"] >= workers["jobs_finished_last_5m"] + 1, after
    # ... and its render time taught what an `auto` job costs.
    learned = {f["format"]: f for f in after["demand"]["formats"]}["auto"]
    before = pending["auto"]["sampled_jobs"]
    assert learned["pending_jobs"] == 0 and learned["sampled_jobs"] == before + 1, learned
    assert learned["render_seconds_per_megapixel_render"] > 0, learned
    assert after["demand"]["overhead_seconds_per_job"] >= 0, after
    assert seconds_until(lambda: alive(stack) == 2, timeout=30) >= 0
    after = health(stack).json()["workers"]
    assert after["oldest_queued_job_age_seconds"] is None, after
    assert after["oldest_queued_job_since"] is None, after


def test_graceful_stop_counts_the_worker_out_at_once(stack: Stack) -> None:
    fresh_worker(stack)
    worker = stack.workers[-1]
    started = time.monotonic()
    worker.stop()
    stopped = time.monotonic() - started
    assert worker.proc is not None and worker.proc.returncode == 0
    assert alive(stack) == 0  # deregistered, not waiting for heartbeats to expire
    print(f"\n[SIGTERM] the worker stopped in {stopped:.2f}s and counted out at once")
