"""Crashes on real pods lose nothing: a worker pod killed in the middle of a batch, and the
PostgreSQL pod deleted (its StatefulSet brings it back on the same claim, data intact)."""

from __future__ import annotations

import collections
import re
import time
from typing import Any

import httpx
import pytest
import pyvips

from tests.e2e.conftest import IMAGE, NAMESPACE, E2ECluster, Service, api_key, pods, selector
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


def test_killing_a_worker_pod_mid_batch_loses_no_job(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    presets = {p["name"] for p in service.spec["thumbnails"]["presets"]}
    data = heavy_png()
    with _client(e2e_cluster, service) as http:
        ids = []
        for _ in range(BATCH):
            submitted = http.post("/v1/jobs", files={"file": ("a.png", data, "image/png")})
            assert submitted.status_code == 202, submitted.text
            ids.append(submitted.json()["id"])

        def someone_working() -> list[str]:
            return [j["id"] for j in _jobs(http, ids) if j["status"] == "processing"]

        wait_for(someone_working, timeout=60, what="a job in processing", interval=0.2)
        victim = pods(e2e_cluster, selector(service, "worker"))[0]["metadata"]["name"]
        e2e_cluster.kubectl("-n", NAMESPACE, "delete", "pod", victim, "--grace-period=0",
                            "--force", "--wait=false")

        def all_finished() -> list[dict[str, Any]] | None:
            jobs = _jobs(http, ids)
            done = all(j["status"] in {"succeeded", "failed"} for j in jobs)
            return jobs if done else None

        jobs = wait_for(all_finished, timeout=300, what=f"{BATCH} jobs after a worker crash",
                        interval=1, ignore=(httpx.HTTPError,))
    assert [j["status"] for j in jobs] == ["succeeded"] * BATCH, jobs
    for job in jobs:
        names = [t["name"] for t in job["thumbnails"]]
        assert sorted(names) == sorted(presets), job  # each thumbnail exactly once
    # Only the jobs the killed pod held were retried: at most its thread count extra runs.
    threads = service.spec["workers"]["concurrency"]["threads"]
    processes = service.spec["workers"]["concurrency"]["processes"]
    assert sum(j["attempts"] for j in jobs) <= BATCH + threads * processes, jobs
    # No surviving worker finished any job twice.
    finished: collections.Counter[str] = collections.Counter()
    for pod in pods(e2e_cluster, selector(service, "worker")):
        log = e2e_cluster.kubectl("-n", NAMESPACE, "logs", pod["metadata"]["name"])
        finished.update(re.findall(r"job (\S+): succeeded", log))
    assert all(finished[job_id] <= 1 for job_id in ids), finished


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
        job = wait_for(lambda: http.get(f"/v1/jobs/{job_id}"), timeout=60,
                       what="the API reading jobs again", interval=1,
                       ignore=(httpx.HTTPError,))
        assert job.status_code == 200 and job.json()["status"] == "succeeded", job.text
