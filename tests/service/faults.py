"""Shared by the fault-injection tests (`test_*_faults_real.py`): timed HTTP calls made in
parallel, bounded recovery polling, and a batch of jobs whose fate is checked exactly (none
lost, none processed twice)."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from minio import Minio

from tests.service.conftest import API_KEY
from tests.service.stack import Stack

# The target: an unresponsive dependency is a 503 within 5 s. The margin absorbs a
# shared, noisy 2-core machine; the measured numbers are printed either way.
TARGET_SECONDS = 5.0
MARGIN_SECONDS = 2.0
LIMIT_SECONDS = TARGET_SECONDS + MARGIN_SECONDS
# A request still unanswered after this has certainly missed the target (the old code
# answered after 30-90 s): give up instead of waiting for it.
CLIENT_TIMEOUT_SECONDS = 20.0
FINISHED = {"succeeded", "failed"}


@dataclass
class Timed:
    what: str
    seconds: float
    status: int | None  # None: no answer (client timeout or connection error)
    body: Any = None
    error: str | None = None
    retry_after: str | None = None

    def __str__(self) -> str:
        answer = self.status if self.status is not None else f"no answer ({self.error})"
        return f"{self.what}: {answer} after {self.seconds:.2f}s"


def timed(
    stack: Stack, what: str, method: str, path: str, **kwargs: Any
) -> Callable[[], Timed]:
    """A call to run later (see `in_parallel`), timed from its own start."""

    def call() -> Timed:
        with httpx.Client(
            base_url=stack.base_url,
            headers={"X-API-Key": API_KEY},
            timeout=CLIENT_TIMEOUT_SECONDS,
        ) as http:
            started = time.monotonic()
            try:
                response = http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                return Timed(what, time.monotonic() - started, None, error=repr(exc))
            seconds = time.monotonic() - started
            try:
                body = response.json()
            except ValueError:
                body = response.text[:200]
            return Timed(what, seconds, response.status_code, body,
                         retry_after=response.headers.get("retry-after"))

    return call


def in_parallel(calls: list[Callable[[], Timed]]) -> dict[str, Timed]:
    with ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(lambda call: call(), calls))
    return {r.what: r for r in results}


def report(title: str, results: dict[str, Timed] | list[Timed]) -> None:
    items = results.values() if isinstance(results, dict) else results
    print(f"\n[{title}]")
    for result in items:
        print(f"  {result}")


def assert_503(result: Timed, dependency: str) -> None:
    """The documented outage answer, fast: 503, the JSON error shape, Retry-After."""
    assert result.status == 503, str(result)
    assert result.seconds <= LIMIT_SECONDS, str(result)
    error = result.body.get("error")
    if error is not None:  # an API error
        assert error["code"] == "dependency_unavailable", result.body
        assert dependency in error["message"], result.body
        assert result.retry_after, "a 503 without Retry-After"
    else:  # readiness
        assert dependency in result.body["message"], result.body


def seconds_until(probe: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> float:
    """How long until `probe` holds (an HTTP error counts as "not yet"); bounded."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        try:
            if probe():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not recovered within {timeout:.0f}s")
        time.sleep(interval)


def ready(stack: Stack) -> bool:
    return httpx.get(f"{stack.base_url}/healthz/detailed", timeout=10).status_code == 200


@dataclass
class Batch:
    """Jobs submitted around a fault; `settle` proves each finished once, none lost."""

    stack: Stack
    ids: list[str] = field(default_factory=list)

    def submit(self, client: httpx.Client, data: bytes, count: int, **fields: str) -> None:
        for _ in range(count):
            response = client.post("/v1/jobs", files={"file": ("a.png", data)}, data=fields)
            assert response.status_code == 202, response.text
            self.ids.append(response.json()["id"])

    def in_flight(self, client: httpx.Client) -> int:
        """How many are not finished yet; asserts some are (or the fault hits no batch)."""
        count = sum(
            client.get(f"/v1/jobs/{i}").json()["status"] not in FINISHED for i in self.ids
        )
        assert count, "the whole batch finished before the fault: use more or bigger jobs"
        return count

    def settle(
        self, client: httpx.Client, s3: Minio, bucket: str, *, timeout: float = 90
    ) -> list[Any]:
        """Waits until every job finished; returns them. Asserts none was lost (all
        finished), none finished twice (at most one "succeeded" per job in the worker
        logs) and each succeeded job has exactly its thumbnails in storage."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = [client.get(f"/v1/jobs/{i}").json() for i in self.ids]
            if all(j["status"] in FINISHED for j in jobs):
                break
            if time.monotonic() > deadline:
                waiting = [(j["id"], j["status"], j["attempts"], j["error"]) for j in jobs
                           if j["status"] not in FINISHED]
                raise AssertionError(f"jobs never finished: {waiting}\n{self.stack.logs()}")
            time.sleep(0.3)
        logs = "".join(w.log.read_text(errors="replace") for w in self.stack.workers)
        finished = Counter(re.findall(r"job ([0-9a-f-]{36}): succeeded", logs))
        twice = {job_id: n for job_id, n in finished.items() if n > 1}
        assert not twice, f"jobs finished more than once: {twice}"
        for job in jobs:
            if job["status"] != "succeeded":
                continue
            stored = sorted(
                o.object_name.split("/", 1)[1]
                for o in s3.list_objects(bucket, prefix=f"{job['id']}/")
            )
            assert stored == sorted(t["name"] for t in job["thumbnails"]), (job, stored)
        return jobs
