"""Unresponsive dependencies fail fast and recover fast (issue #13, finding 4).

PostgreSQL, MinIO and Redis are frozen with SIGSTOP: their listening sockets stay open, so the
kernel still accepts connections and then nothing answers (a hung server, a frozen node, a
network dropping packets), the hardest outage for a client. Every path (submit, status, list,
download, delete, readiness) must give the documented 503 in the API's error shape within the
5 s target, liveness must not care, and after SIGCONT or a restart everything must work again
at once, with a batch that was in flight during the outage finished: no job lost, none
processed twice. The measured times are printed (`pytest -s`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from minio import Minio

from tests.service import images
from tests.service.conftest import API_KEY
from tests.service.faults import (
    LIMIT_SECONDS,
    Batch,
    Timed,
    assert_503,
    in_parallel,
    ready,
    report,
    seconds_until,
    timed,
)
from tests.service.stack import Stack
from tests.service.test_processing_real import submit, wait_finished

pytestmark = pytest.mark.services
SERVICE_ENV = {
    "THUMBNAIL_WORKER_THREADS": "2",
    # Room for a few timed-out attempts (3 s each while MinIO is frozen) plus backoff.
    "THUMBNAIL_MAX_ATTEMPTS": "10",
}
PNG = images.encode(images.two_halves(64, 48), "png")
# About 0.3 s of work per job: a batch of 6-8 is still in flight when the fault hits.
BATCH_IMAGE = images.encode(images.noise(2000, 1500), "jpg", Q=90)


@pytest.fixture(scope="module")
def finished_job(worker_stack: Stack) -> Any:
    """A succeeded job, to read, download and delete during the outages."""
    with httpx.Client(base_url=worker_stack.base_url, headers={"X-API-Key": API_KEY},
                      timeout=30) as http:
        job = submit(http, PNG, sizes="small")
        done = wait_finished(http, job["id"], worker_stack)
    assert done["status"] == "succeeded", done
    return done


@pytest.fixture
def bucket(service_env: dict[str, str]) -> str:
    return service_env["THUMBNAIL_BUCKET_THUMBNAILS"]


@pytest.fixture
def fresh_job(worker_stack: Stack, client: httpx.Client) -> Iterator[Any]:
    """A succeeded job that a test may delete."""
    done = wait_finished(client, submit(client, PNG, sizes="small")["id"], worker_stack)
    assert done["status"] == "succeeded", done
    yield done


def every_path(stack: Stack, job: Any, doomed: Any) -> list[Any]:
    job_id = job["id"]
    return [
        timed(stack, "readiness", "GET", "/healthz/detailed"),
        timed(stack, "liveness", "GET", "/healthz"),
        timed(stack, "submit", "POST", "/v1/jobs", files={"file": ("a.png", PNG)},
              data={"sizes": "small"}),
        timed(stack, "status", "GET", f"/v1/jobs/{job_id}"),
        timed(stack, "list", "GET", "/v1/jobs"),
        timed(stack, "download", "GET", f"/v1/jobs/{job_id}/thumbnails/small",
              params={"redirect": "false"}),
        timed(stack, "delete", "DELETE", f"/v1/jobs/{doomed['id']}"),
    ]


def assert_fast_ok(result: Timed, status: int = 200) -> None:
    assert result.status == status, str(result)
    assert result.seconds <= LIMIT_SECONDS, str(result)


def test_frozen_postgresql_is_a_fast_503_on_every_path_then_recovers(
    worker_stack: Stack, client: httpx.Client, s3: Minio, bucket: str, postgres: Any,
    finished_job: Any, fresh_job: Any,
) -> None:
    batch = Batch(worker_stack)
    batch.submit(client, BATCH_IMAGE, 6, sizes="small,medium")
    in_flight = batch.in_flight(client)
    postgres.pause()
    try:
        # Twice: first on pooled connections that stop answering, then on new connections
        # that the kernel accepts but the frozen server never greets.
        rounds = [in_parallel(every_path(worker_stack, finished_job, fresh_job)) for _ in "12"]
    finally:
        postgres.resume()
    resumed = time.monotonic()
    ready_after = seconds_until(lambda: ready(worker_stack), timeout=30)
    submit_after = seconds_until(
        lambda: client.post("/v1/jobs", files={"file": ("a.png", PNG)}).status_code == 202,
        timeout=30,
    )
    for number, results in enumerate(rounds, 1):
        report(f"PostgreSQL frozen, round {number}", results)
    print(f"  recovery after SIGCONT: readiness {ready_after:.2f}s, submit "
          f"{time.monotonic() - resumed:.2f}s (first 202 took {submit_after:.2f}s of it)")
    for results in rounds:
        assert_fast_ok(results["liveness"])
        for path in ("readiness", "submit", "status", "list", "download", "delete"):
            assert_503(results[path], "postgresql")
    assert ready_after <= LIMIT_SECONDS
    jobs = batch.settle(client, s3, bucket)
    print(f"  batch: {len(jobs)} jobs, {in_flight} in flight at the fault, all finished once")
    assert all(j["status"] == "succeeded" for j in jobs), jobs
    # The delete answered 503 and removed nothing: the job and its thumbnail are intact.
    assert client.get(f"/v1/jobs/{fresh_job['id']}").status_code == 200
    assert list(s3.list_objects(bucket, prefix=f"{fresh_job['id']}/"))


def test_frozen_minio_is_a_fast_503_for_storage_paths_then_recovers(
    worker_stack: Stack, client: httpx.Client, s3: Minio, bucket: str, minio_server: Any,
    finished_job: Any, fresh_job: Any,
) -> None:
    batch = Batch(worker_stack)
    batch.submit(client, BATCH_IMAGE, 6, sizes="small,medium")
    in_flight = batch.in_flight(client)
    minio_server.pause()
    try:
        rounds = [in_parallel(every_path(worker_stack, finished_job, fresh_job)) for _ in "12"]
    finally:
        minio_server.resume()
    ready_after = seconds_until(lambda: ready(worker_stack), timeout=30)
    download_after = seconds_until(
        lambda: client.get(f"/v1/jobs/{finished_job['id']}/thumbnails/small",
                           params={"redirect": "false"}).status_code == 200,
        timeout=30,
    )
    for number, results in enumerate(rounds, 1):
        report(f"MinIO frozen, round {number}", results)
    print(f"  recovery after SIGCONT: readiness {ready_after:.2f}s, "
          f"download {download_after:.2f}s")
    for results in rounds:
        for path in ("liveness", "status", "list"):  # PostgreSQL alone answers these
            assert_fast_ok(results[path])
        for path in ("readiness", "submit", "download", "delete"):
            assert_503(results[path], "minio")
    assert ready_after <= LIMIT_SECONDS
    jobs = batch.settle(client, s3, bucket)
    print(f"  batch: {len(jobs)} jobs, {in_flight} in flight at the fault, all finished once")
    assert all(j["status"] == "succeeded" for j in jobs), jobs
    assert client.get(f"/v1/jobs/{fresh_job['id']}").status_code == 200


def test_frozen_redis_fails_readiness_fast_and_jobs_still_run(
    worker_stack: Stack, client: httpx.Client, s3: Minio, bucket: str, redis_server: Any,
    finished_job: Any, fresh_job: Any,
) -> None:
    """Redis only carries "look at job X": while it hangs, readiness says so within the
    target, submissions are still accepted (durable in PostgreSQL) within it, and the
    sweeper enqueues them once Redis answers again."""
    batch = Batch(worker_stack)
    batch.submit(client, BATCH_IMAGE, 4, sizes="small,medium")
    in_flight = batch.in_flight(client)
    redis_server.pause()
    try:
        results = in_parallel(every_path(worker_stack, finished_job, fresh_job))
        during = in_parallel([
            timed(worker_stack, f"submit {n}", "POST", "/v1/jobs",
                  files={"file": ("a.png", BATCH_IMAGE)}, data={"sizes": "small"})
            for n in range(4)
        ])
    finally:
        redis_server.resume()
    ready_after = seconds_until(lambda: ready(worker_stack), timeout=30)
    report("Redis frozen", {**results, **during})
    print(f"  recovery after SIGCONT: readiness {ready_after:.2f}s")
    assert_503(results["readiness"], "redis")
    for path in ("liveness", "status", "list", "download"):
        assert_fast_ok(results[path])
    assert_fast_ok(results["delete"], 204)
    for result in [results["submit"], *during.values()]:
        assert_fast_ok(result, 202)
        batch.ids.append(result.body["id"])
    assert ready_after <= LIMIT_SECONDS
    jobs = batch.settle(client, s3, bucket)
    print(f"  batch: {len(jobs)} jobs, {in_flight} in flight at the fault, all finished once")
    assert all(j["status"] == "succeeded" for j in jobs), jobs


@pytest.mark.parametrize("dependency", ["postgresql", "minio"])
def test_dependency_restarted_mid_batch_loses_nothing(
    worker_stack: Stack, client: httpx.Client, s3: Minio, bucket: str, postgres: Any,
    minio_server: Any, dependency: str,
) -> None:
    """A fast shutdown, as a pod deletion does. (Not SIGKILL for PostgreSQL: the substrate's
    server runs with synchronous_commit=off for speed, so a crash would drop its last commits
    by design.)"""
    server = {"postgresql": postgres, "minio": minio_server}[dependency]
    batch = Batch(worker_stack)
    batch.submit(client, BATCH_IMAGE, 8, sizes="small,medium")
    in_flight = batch.in_flight(client)
    server.stop()
    calls = [timed(worker_stack, "readiness", "GET", "/healthz/detailed")]
    if dependency == "postgresql":  # a status read needs only PostgreSQL
        calls.append(timed(worker_stack, "status", "GET", f"/v1/jobs/{batch.ids[0]}"))
    down = in_parallel(calls)
    started = time.monotonic()
    server.start()
    restarted = time.monotonic() - started
    ready_after = seconds_until(lambda: ready(worker_stack), timeout=30)
    report(f"{dependency} stopped", down)
    print(f"  server restart {restarted:.2f}s, then readiness {ready_after:.2f}s")
    for result in down.values():
        assert_503(result, dependency)
    assert ready_after <= LIMIT_SECONDS
    jobs = batch.settle(client, s3, bucket)
    print(f"  batch: {len(jobs)} jobs, {in_flight} in flight at the fault, all finished once")
    assert all(j["status"] == "succeeded" for j in jobs), jobs


def test_redis_flushed_mid_batch_loses_nothing(
    worker_stack: Stack, client: httpx.Client, s3: Minio, bucket: str, redis_server: Any,
) -> None:
    batch = Batch(worker_stack)
    batch.submit(client, BATCH_IMAGE, 8, sizes="small,medium")
    in_flight = batch.in_flight(client)
    flushed = time.monotonic()
    redis.Redis(host=redis_server.host, port=redis_server.port).flushall()
    jobs = batch.settle(client, s3, bucket)
    print(f"\n[Redis flushed mid-batch] {len(jobs)} jobs, {in_flight} in flight at the flush: "
          f"all finished once, {time.monotonic() - flushed:.2f}s after it")
    assert all(j["status"] == "succeeded" for j in jobs), jobs


async def test_changed_postgresql_password_is_a_503_not_a_500(
    worker_stack: Stack, finished_job: Any, fresh_job: Any, db: Any,
    service_env: dict[str, str],
) -> None:
    """A credentials rotation (the operator's rotate-credentials) restarts PostgreSQL with
    the new password while pods still hold the old one: until they roll, every path answers
    the documented 503 (readiness says why), never a 500."""
    user, password = service_env["THUMBNAIL_DATABASE_USER"], service_env[
        "THUMBNAIL_DATABASE_PASSWORD"]
    await db.execute(f"ALTER ROLE \"{user}\" PASSWORD 'rotated-elsewhere'")
    try:
        # Drop the API's pooled sessions (as the restart of the pod does): it must log in.
        await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE usename = $1 AND pid <> pg_backend_pid()", user)
        results = in_parallel(every_path(worker_stack, finished_job, fresh_job))
        report("PostgreSQL password changed", results)
        for what, result in results.items():
            if what == "liveness":
                assert_fast_ok(result)
            else:
                assert_503(result, "postgresql")
        # Clients get "postgresql is unavailable"; readiness (for operators) says why.
        check = results["readiness"].body["checks"]["postgresql"]
        assert "password" in check["error"], check
    finally:
        await db.execute(f"ALTER ROLE \"{user}\" PASSWORD '{password}'")
    assert seconds_until(lambda: ready(worker_stack), timeout=30) >= 0


def test_submission_answered_503_mid_insert_that_commits_later_runs(
    worker_stack: Stack, client: httpx.Client, postgres: Any
) -> None:
    """PostgreSQL frozen with the INSERT already sent (a warm pool sends it at once): the
    client gets its 503, the row commits when PostgreSQL resumes. The original must still be
    there, so that job runs; it used to be deleted, and the job failed "original missing"."""
    def job_ids() -> set[str]:
        return {j["id"] for j in client.get("/v1/jobs", params={"limit": 100}).json()["items"]}

    for _ in range(3):  # warm the API's connections
        submit(client, PNG, sizes="small")
    before = job_ids()
    postgres.pause()
    try:
        answer = client.post("/v1/jobs", files={"file": ("a.png", PNG)}, data={"sizes": "small"})
    finally:
        postgres.resume()
    assert answer.status_code == 503, answer.text
    late = seconds_until(lambda: bool(job_ids() - before), timeout=10)
    (job_id,) = job_ids() - before
    done = wait_finished(client, job_id, worker_stack)
    print(f"\n[503 mid-INSERT] the row committed {late:.2f}s after SIGCONT; the job "
          f"{done['status']}")
    assert done["status"] == "succeeded", done
