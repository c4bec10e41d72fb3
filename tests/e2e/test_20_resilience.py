"""Crashes on real pods lose nothing: a worker pod killed in the middle of a batch, and the
PostgreSQL pod deleted (its StatefulSet brings it back on the same claim, data intact)."""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import pyvips

from tests.e2e.conftest import (
    IMAGE,
    NAMESPACE,
    E2ECluster,
    Service,
    api_key,
    pods,
    ready_pods,
    selector,
)
from thumbnail_substrate.testing import wait_for

pytestmark = pytest.mark.e2e

BATCH = 24


def heavy_png() -> bytes:
    """42 megapixels (under the sample's 50 M limit), 1.7 MB: a few hundred ms per job, so
    a batch is still in flight when the worker pod dies."""
    stripes = (pyvips.Image.xyz(7000, 6000)[0] / 28).cast("uchar")
    return bytes(stripes.bandjoin([128, 64]).pngsave_buffer(compression=6))


def _client(cluster: E2ECluster, service: Service) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.api_url, timeout=30, headers={"X-API-Key": api_key(cluster, service)}
    )


def _jobs(http: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    return [http.get(f"/v1/jobs/{job_id}").json() for job_id in ids]



def _claim(pod: dict[str, Any]) -> str:
    (data,) = [v for v in pod["spec"]["volumes"] if v["name"] == "data"]
    name: str = data["persistentVolumeClaim"]["claimName"]
    return name


def _scale_workers(cluster: E2ECluster, service: Service, replicas: int) -> list[dict[str, Any]]:
    cluster.kubectl("-n", NAMESPACE, "scale", f"thumbnailservice/{service.name}",
                    f"--replicas={replicas}")

    def settled() -> tuple[list[dict[str, Any]]] | None:
        ready = ready_pods(cluster, service, "worker")
        all_now = pods(cluster, selector(service, "worker"))
        return (ready,) if len(all_now) == len(ready) == replicas else None  # () is falsy

    (ready,) = wait_for(settled, timeout=180, what=f"{replicas} ready worker pods", interval=1)
    return ready


def test_killing_a_worker_pod_mid_batch_loses_no_job(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    """One worker pod, so the crash surely cuts jobs off mid-render; its container is
    SIGKILLed (no graceful shutdown) and the lease sweeper must bring the jobs back."""
    presets = {p["name"] for p in service.spec["thumbnails"]["presets"]}
    data = heavy_png()
    (pod,) = _scale_workers(e2e_cluster, service, 1)
    with _client(e2e_cluster, service) as http:
        ids: list[str] = []
        crashed = False
        for _ in range(BATCH):
            submitted = http.post("/v1/jobs", files={"file": ("a.png", data, "image/png")})
            assert submitted.status_code == 202, submitted.text
            ids.append(submitted.json()["id"])
            # Mid-batch: as soon as the worker is busy, with more of the batch to come.
            if not crashed and len(ids) >= 4 and any(
                j["status"] == "processing" for j in _jobs(http, ids[-4:])
            ):
                e2e_cluster.crash(pod)
                crashed = True
        assert crashed, "no job was ever seen processing"

        def all_finished() -> list[dict[str, Any]] | None:
            jobs = _jobs(http, ids)
            done = all(j["status"] in {"succeeded", "failed"} for j in jobs)
            return jobs if done else None

        # Cut-off jobs come back once their lease (120 s by default) has expired.
        jobs = wait_for(all_finished, timeout=420, what=f"{BATCH} jobs after a worker crash",
                        interval=2, ignore=(httpx.HTTPError,))
    assert [j["status"] for j in jobs] == ["succeeded"] * BATCH, jobs
    for job in jobs:
        names = [t["name"] for t in job["thumbnails"]]
        assert sorted(names) == sorted(presets), job  # each thumbnail exactly once
    # The kill really interrupted work, and only the jobs the killed pod held were retried:
    # at most its thread count of extra runs.
    assert any(j["attempts"] > 1 for j in jobs), "the killed pod was processing nothing?"
    threads = service.spec["workers"]["concurrency"]["threads"]
    processes = service.spec["workers"]["concurrency"]["processes"]
    assert sum(j["attempts"] for j in jobs) <= BATCH + threads * processes, jobs
    # The container was restarted in place; no job was finished twice, before or after.
    name = pod["metadata"]["name"]
    finished: collections.Counter[str] = collections.Counter()
    for previous in (True, False):
        log = e2e_cluster.kubectl("-n", NAMESPACE, "logs", name, "-c", "worker",
                                  *(["--previous"] if previous else []))
        finished.update(re.findall(r"job (\S+): succeeded", log))
    assert all(finished[job_id] <= 1 for job_id in ids), finished
    restarts = e2e_cluster.get("-n", NAMESPACE, "pod", name)["status"]["containerStatuses"]
    assert restarts[0]["restartCount"] >= 1, restarts
    _scale_workers(e2e_cluster, service, service.spec["workers"]["replicas"])


def test_postgresql_pod_comes_back_on_its_claim_with_the_jobs(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    with _client(e2e_cluster, service) as http:
        submitted = http.post(
            "/v1/jobs", files={"file": ("a.jpg", IMAGE.read_bytes(), "image/jpeg")}
        )
        job_id = submitted.json()["id"]
        wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded",
                 timeout=120, what="a job before the database restart", interval=0.5)
        (before,) = pods(e2e_cluster, selector(service, "postgresql"))
        claim = _claim(before)
        e2e_cluster.kubectl("-n", NAMESPACE, "delete", "pod", before["metadata"]["name"])

        def replaced_and_ready() -> bool:
            now = pods(e2e_cluster, selector(service, "postgresql"))
            return bool(now) and now[0]["metadata"]["uid"] != before["metadata"]["uid"] and all(
                s["ready"] for s in now[0]["status"].get("containerStatuses", [{"ready": False}])
            )

        started = time.monotonic()
        wait_for(replaced_and_ready, timeout=180, what="PostgreSQL pod back", interval=1)
        print(f"PostgreSQL pod replaced and ready in {time.monotonic() - started:.1f}s")
        (after,) = pods(e2e_cluster, selector(service, "postgresql"))
        assert _claim(after) == claim
        # Until the API's pool has reconnected it answers 503 "retry later", never a 500.
        def read_again() -> httpx.Response | None:
            got = http.get(f"/v1/jobs/{job_id}")
            assert got.status_code in (200, 503), got.text
            return got if got.status_code == 200 else None

        job = wait_for(read_again, timeout=90, what="the API reading jobs again", interval=1,
                       ignore=(httpx.HTTPError,))
        assert job.json()["status"] == "succeeded", job.text


def _processing(cluster: E2ECluster, service: Service) -> dict[str, Any]:
    cr = cluster.get("-n", NAMESPACE, "thumbnailservice", service.name)
    processing: dict[str, Any] = cr.get("status", {}).get("processing", {})
    return processing


def _await_processing(
    cluster: E2ECluster, service: Service, done: Callable[[dict[str, Any]], bool], what: str,
    timeout: float,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        processing = _processing(cluster, service)
        return processing if done(processing) else None

    return wait_for(probe, timeout=timeout, what=f"status.processing: {what}", interval=2)


def _columns(cluster: E2ECluster, service: Service, *wide: str) -> dict[str, str]:
    """`kubectl get thumbnailservice` as a user reads it: header -> value (`-o wide` too)."""
    header, row = cluster.kubectl("-n", NAMESPACE, "get", "thumbnailservice",
                                  service.name, *wide).splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    bounds = zip(starts, [*starts[1:], None], strict=True)
    return {header[a:b].strip(): row[a:b].strip() for a, b in bounds}


def test_status_reports_live_workers_and_the_oldest_waiting_job(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    """The operator asks the running API (its /healthz/detailed, every 30 s by default): the
    live worker processes and, while no worker runs, since when a job waits."""
    spec = service.spec["workers"]
    expected = spec["replicas"] * spec["concurrency"]["processes"]
    started = time.monotonic()
    alive = _await_processing(e2e_cluster, service, lambda p: p.get("liveWorkers") == expected,
                              f"{expected} live workers", timeout=120)
    assert "oldestQueuedJobSince" not in alive, alive
    columns = _columns(e2e_cluster, service)
    assert columns["LIVE"] == str(expected) and columns["OLDEST QUEUED"] == "", columns
    print(f"\n[status.processing] {alive['message']!r} after {time.monotonic() - started:.0f}s")

    _scale_workers(e2e_cluster, service, 0)
    try:
        job = _wait_for_the_waiting_job(e2e_cluster, service)
    finally:
        _scale_workers(e2e_cluster, service, spec["replicas"])
    with _client(e2e_cluster, service) as http:
        wait_for(lambda: http.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded",
                 timeout=120, what="the waiting job done by the new workers", interval=1)
    recovered = _await_processing(
        e2e_cluster, service,
        lambda p: p.get("liveWorkers") == expected and "oldestQueuedJobSince" not in p,
        "live workers back, no job waiting", timeout=120)
    assert recovered["message"].endswith("no job waits"), recovered
    # The waiting job (and the earlier tests' jobs) finished within five minutes.
    assert recovered["queuedJobs"] == 0 and recovered["jobsPerMinute"] > 0, recovered


def _wait_for_the_waiting_job(e2e_cluster: E2ECluster, service: Service) -> dict[str, Any]:
    """With no worker running: a job is submitted; the status shows it waiting."""
    with _client(e2e_cluster, service) as http:
        png = pyvips.Image.black(64, 64).pngsave_buffer()
        submitted = http.post("/v1/jobs", files={"file": ("a.png", png, "image/png")})
        assert submitted.status_code == 202, submitted.text
        job: dict[str, Any] = submitted.json()
        started = time.monotonic()
        stalled = _await_processing(
            e2e_cluster, service,
            lambda p: p.get("liveWorkers") == 0 and "oldestQueuedJobSince" in p,
            "no live worker, a job waiting", timeout=150)
        # The job's own submission time, to the second, as Kubernetes writes times.
        assert job["created_at"].startswith(stalled["oldestQueuedJobSince"].rstrip("Z")), (
            job, stalled)
        assert "no live worker process" in stalled["message"], stalled
        assert stalled["queuedJobs"] == 1, stalled  # the backlog
        columns = _columns(e2e_cluster, service, "-o", "wide")
        assert columns["LIVE"] == "0" and re.fullmatch(r"\d+s|\dm\d+s", columns[
            "OLDEST QUEUED"]), columns
        assert columns["BACKLOG"] == "1", columns
        print(f"[status.processing] {stalled['message']!r} after "
              f"{time.monotonic() - started:.0f}s; kubectl get: {columns}")
    return job
