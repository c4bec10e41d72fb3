"""No job is ever lost: killed workers, a flushed Redis and a PostgreSQL outage all recover."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import redis
from minio import Minio

from tests.service import images
from tests.service.stack import Stack, wait_for
from tests.service.test_processing_real import objects, submit, wait_finished

pytestmark = pytest.mark.services
SERVICE_ENV = {
    "THUMBNAIL_WORKER_THREADS": "1",
    "THUMBNAIL_JOB_TIMEOUT_SECONDS": "120",
    # Backoff 0.5, 1, 2, 2, 2 s: room for MinIO to restart before the retries run out.
    "THUMBNAIL_MAX_ATTEMPTS": "6",
}
SLOW_SIZES = "a=600x600,b=300x300"  # AVIF of noise: a few seconds of real libvips work


def stop_workers(stack: Stack) -> None:
    for worker in stack.workers:
        worker.stop()


def test_sigkill_mid_job_then_new_worker_finishes_it_once(
    stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str]
) -> None:
    slow = images.encode(images.noise(3000, 2000), "jpg", Q=90)
    worker = stack.start_worker()
    job = submit(client, slow, sizes=SLOW_SIZES, fit="smart", format="avif")

    def processing() -> Any:
        current = client.get(f"/v1/jobs/{job['id']}").json()
        return current if current["status"] == "processing" else None

    wait_for(processing, timeout=60, interval=0.05, what="the worker to pick the job up")
    time.sleep(0.5)  # well inside the render
    worker.kill()
    killed = client.get(f"/v1/jobs/{job['id']}").json()
    assert killed["status"] == "processing", "the job finished before the kill: not a mid-job test"
    assert killed["thumbnails"] == []

    stack.start_worker()
    done = wait_finished(client, job["id"], stack, timeout=120)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2  # the killed attempt, then the recovered one
    assert sorted(t["name"] for t in done["thumbnails"]) == ["a", "b"]
    stored = objects(s3, service_env["THUMBNAIL_BUCKET_THUMBNAILS"], job["id"])
    assert sorted(stored) == ["a", "b"]  # exactly one set: deterministic keys, no duplicates


def test_flushed_redis_loses_no_job(stack: Stack, client: httpx.Client, redis_server: Any) -> None:
    stop_workers(stack)
    data = images.encode(images.two_halves(400, 300), "png")
    ids = [submit(client, data, sizes="small")["id"] for _ in range(5)]
    queue = stack.env["THUMBNAIL_QUEUE_NAME"]
    broker = redis.Redis(host=redis_server.host, port=redis_server.port)
    assert broker.llen(f"dramatiq:{queue}") >= 5  # (+ any redelivery of the killed job)
    broker.flushall()
    assert broker.llen(f"dramatiq:{queue}") == 0

    worker = stack.start_worker()
    for job_id in ids:
        done = wait_finished(client, job_id, stack, timeout=60)
        assert done["status"] == "succeeded", done
    assert "re-enqueued" in worker.log.read_text(), "recovered without the sweeper?"


def test_postgresql_outage_is_503_then_recovers(
    stack: Stack, client: httpx.Client, postgres: Any
) -> None:
    if not any(w.alive for w in stack.workers):
        stack.start_worker()
    data = images.encode(images.two_halves(300, 300), "png")
    postgres.stop()
    try:
        health = client.get("/healthz/detailed")
        assert health.status_code == 503
        body = health.json()
        assert "postgresql" in body["message"]
        assert body["checks"]["postgresql"]["status"] == "unavailable"
        assert body["checks"]["redis"]["status"] == body["checks"]["minio"]["status"] == "ok"

        for response in (
            client.post("/v1/jobs", files={"file": ("a.png", data)}),
            client.post(
                "/v1/jobs", files={"file": ("a.png", data)}, headers={"Idempotency-Key": "outage"}
            ),
            client.get("/v1/jobs"),
        ):
            assert response.status_code == 503, response.text
            assert "postgresql" in response.json()["error"]["message"]
            assert response.headers["retry-after"]
        assert client.get("/healthz").status_code == 200  # liveness does not depend on it
    finally:
        postgres.start()

    wait_for(
        lambda: client.get("/healthz/detailed").status_code == 200,
        timeout=30,
        what="readiness after PostgreSQL returned",
    )
    job = submit(client, data, sizes="small")
    done = wait_finished(client, job["id"], stack, timeout=60)
    assert done["status"] == "succeeded", done


def _queue_job_with_minio_down(stack: Stack, client: httpx.Client, minio_server: Any) -> str:
    stop_workers(stack)
    job_id: str = submit(client, images.encode(images.two_halves(300, 200), "png"), sizes="small")[
        "id"
    ]
    minio_server.stop()
    stack.start_worker()
    return job_id


def test_storage_outage_is_retried_with_backoff_then_succeeds(
    stack: Stack, client: httpx.Client, minio_server: Any
) -> None:
    job_id = _queue_job_with_minio_down(stack, client, minio_server)
    try:

        def retried() -> Any:
            job = client.get(f"/v1/jobs/{job_id}").json()
            return job if job["attempts"] >= 2 and job["status"] != "failed" else None

        job = wait_for(retried, timeout=30, what="a retry while MinIO is down")
        assert "minio" in (job["error"] or ""), job
    finally:
        minio_server.start()
    done = wait_finished(client, job_id, stack, timeout=60)
    assert done["status"] == "succeeded", done
    assert done["error"] is None and done["attempts"] >= 2


def test_exhausted_retries_fail_with_the_reason(
    stack: Stack, client: httpx.Client, minio_server: Any
) -> None:
    job_id = _queue_job_with_minio_down(stack, client, minio_server)
    try:
        done = wait_finished(client, job_id, stack, timeout=60)
    finally:
        minio_server.start()
    assert done["status"] == "failed", done
    attempts = int(stack.env["THUMBNAIL_MAX_ATTEMPTS"])
    assert done["attempts"] == attempts
    assert done["error"].startswith(f"gave up after {attempts} attempts: minio unavailable"), done[
        "error"
    ]


def test_redis_outage_still_accepts_jobs_and_runs_them_later(
    stack: Stack, client: httpx.Client, redis_server: Any
) -> None:
    if not any(w.alive for w in stack.workers):
        stack.start_worker()
    redis_server.stop()
    try:
        health = client.get("/healthz/detailed")
        assert health.status_code == 503 and "redis" in health.json()["message"]
        # The job is durable in PostgreSQL: accepted now, enqueued by the sweeper later.
        job = submit(client, images.encode(images.two_halves(200, 200), "png"), sizes="small")
    finally:
        redis_server.start()
    done = wait_finished(client, job["id"], stack, timeout=90)
    assert done["status"] == "succeeded", done


def test_minio_outage_is_503_for_submissions(
    stack: Stack, client: httpx.Client, minio_server: Any
) -> None:
    data = images.encode(images.two_halves(100, 100), "png")
    minio_server.stop()
    try:
        health = client.get("/healthz/detailed")
        assert health.status_code == 503 and health.json()["message"] == "unavailable: minio"
        response = client.post("/v1/jobs", files={"file": ("a.png", data)})
        assert response.status_code == 503, response.text
        assert "minio" in response.json()["error"]["message"]
        metrics = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
        assert 'thumbnail_dependency_up{dependency="minio"} 0.0' in metrics
        assert 'thumbnail_dependency_up{dependency="postgresql"} 1.0' in metrics
    finally:
        minio_server.start()
    wait_for(
        lambda: client.get("/healthz/detailed").status_code == 200,
        timeout=30,
        what="readiness after MinIO returned",
    )
    assert client.post("/v1/jobs", files={"file": ("a.png", data)}).status_code == 202
    metrics = httpx.get(f"{stack.base_url}/metrics", timeout=10).text
    assert 'thumbnail_dependency_up{dependency="minio"} 1.0' in metrics
