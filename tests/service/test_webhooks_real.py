"""Completion webhooks against the real API, worker (its sweeper delivers), PostgreSQL,
Redis and MinIO, to a receiver on loopback (allowed explicitly: the SSRF guard refuses
loopback by default)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.service import images
from tests.service.stack import Stack, wait_for
from thumbnail_service.webhooks.signing import verify

pytestmark = pytest.mark.services
SECRET = "whsec-test-" + "x" * 24
SERVICE_ENV = {
    "THUMBNAIL_WEBHOOK_SECRETS": f"{SECRET},older-secret-still-signed",
    "THUMBNAIL_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "THUMBNAIL_WEBHOOK_MAX_ATTEMPTS": "4",
    "THUMBNAIL_WEBHOOK_RETRY_MIN_SECONDS": "0.3",
    "THUMBNAIL_WEBHOOK_RETRY_MAX_SECONDS": "1",
    "THUMBNAIL_WEBHOOK_POLL_SECONDS": "0.2",
}


class Receiver(ThreadingHTTPServer):
    """Records every POST; answers each path the statuses queued for it, then 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.script: dict[str, list[int]] = {}
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:
                body = handler.rfile.read(int(handler.headers["Content-Length"]))
                with self.lock:
                    self.received.append({"path": handler.path, "body": body,
                                          "headers": dict(handler.headers),
                                          "at": time.time()})
                    queued = self.script.get(handler.path, [])
                    status = queued.pop(0) if queued else 200
                handler.send_response(status)
                handler.send_header("Content-Length", "0")
                handler.end_headers()

            def log_message(handler, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def posts(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["path"] == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def submit(client: httpx.Client, data: bytes, callback_url: str) -> str:
    answer = client.post("/v1/jobs", files={"file": ("x", data)},
                         data={"sizes": "small", "callback_url": callback_url})
    assert answer.status_code == 202, answer.text
    assert answer.json()["callback"] == {"url": callback_url, "state": None, "attempts": []}
    return str(answer.json()["id"])


def callback_settled(client: httpx.Client, job_id: str, stack: Stack) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["callback"]["state"] in ("delivered", "failed") else None

    try:
        return wait_for(settled, timeout=60, what=f"job {job_id}'s webhook")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None


def test_one_signed_delivery_per_job_retried_after_two_500s(
    worker_stack: Stack, client: httpx.Client, receiver: Receiver
) -> None:
    receiver.script["/hooks/a"] = [500, 500]
    picture = images.encode(images.two_halves(400, 300), "jpg")
    job_id = submit(client, picture, receiver.url("/hooks/a"))
    job = callback_settled(client, job_id, worker_stack)
    assert job["status"] == "succeeded"
    assert job["callback"]["state"] == "delivered"
    assert [(a["attempt"], a["status_code"]) for a in job["callback"]["attempts"]] == [
        (1, 500), (2, 500), (3, 200)]
    assert job["callback"]["attempts"][0]["error"] == "answered HTTP 500"
    assert job["callback"]["attempts"][2]["error"] is None
    time.sleep(1.5)  # nothing more arrives: exactly one successful delivery
    posts = receiver.posts("/hooks/a")
    assert len(posts) == 3
    assert posts[1]["at"] - posts[0]["at"] >= 0.25  # backoff between attempts
    for post in posts:
        headers = {k.lower(): v for k, v in post["headers"].items()}
        assert headers["webhook-id"] == job_id
        assert headers["content-type"] == "application/json"
        assert verify(headers["webhook-signature"], SECRET.encode(), post["body"],
                      now=int(time.time()))
        assert verify(headers["webhook-signature"], b"older-secret-still-signed", post["body"],
                      now=int(time.time()))
        assert not verify(headers["webhook-signature"], b"wrong", post["body"],
                          now=int(time.time()))
        assert not verify(headers["webhook-signature"], SECRET.encode(), post["body"] + b" ",
                          now=int(time.time()))
    event = json.loads(posts[-1]["body"])
    assert event["type"] == "job.succeeded"
    assert event["job"]["id"] == job_id and event["job"]["status"] == "succeeded"
    assert [t["name"] for t in event["job"]["thumbnails"]] == ["small"]
    assert event["job"]["thumbnails"][0]["url"] == f"/v1/jobs/{job_id}/thumbnails/small"


def test_a_failed_job_is_delivered_as_job_failed(
    worker_stack: Stack, client: httpx.Client, receiver: Receiver
) -> None:
    whole = images.encode(images.noise(800, 600), "jpg", Q=95)
    job_id = submit(client, whole[: len(whole) // 3], receiver.url("/hooks/failed"))
    job = callback_settled(client, job_id, worker_stack)
    assert job["status"] == "failed" and job["callback"]["state"] == "delivered"
    (post,) = receiver.posts("/hooks/failed")
    event = json.loads(post["body"])
    assert event["type"] == "job.failed" and event["job"]["error"] == job["error"]


def test_a_receiver_that_keeps_failing_is_given_up_after_the_attempts(
    worker_stack: Stack, client: httpx.Client, receiver: Receiver
) -> None:
    receiver.script["/hooks/down"] = [503] * 10
    job_id = submit(client, images.encode(images.solid(50, 50, (1, 2, 3)), "png"),
                    receiver.url("/hooks/down"))
    job = callback_settled(client, job_id, worker_stack)
    assert job["callback"]["state"] == "failed"
    assert [a["status_code"] for a in job["callback"]["attempts"]] == [503] * 4
    assert len(receiver.posts("/hooks/down")) == 4


@pytest.mark.parametrize(
    ("url", "why"),
    [("http://169.254.169.254/latest/meta-data/", "non-public"),  # cloud metadata
     ("http://10.1.2.3/hook", "non-public"), ("http://[::1]:8080/hook", "non-public"),
     ("http://[::ffff:192.168.0.1]/", "non-public"), ("ftp://example.com/x", "http"),
     ("http://user:pw@example.com/", "user info"), ("http://", "http"),
     ("http://example.com:99999/", "not a URL"), ("https://example.com/" + "a" * 2048, "longer")],
)
def test_callbacks_to_refused_targets_are_422(
    stack: Stack, client: httpx.Client, url: str, why: str
) -> None:
    answer = client.post("/v1/jobs", files={"file": ("x", images.encode(
        images.solid(20, 20, (0, 0, 0)), "png"))}, data={"callback_url": url})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == "callback_url" and why in error["message"], error


def test_a_keys_default_webhook_serves_submissions_that_name_none(
    worker_stack: Stack, service_env: dict[str, str], receiver: Receiver
) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "thumbnail_service.admin", "keys", "create", "hooked",
         "--callback-url", receiver.url("/hooks/default")],
        env=service_env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["callback_url"] == receiver.url("/hooks/default")
    with httpx.Client(base_url=worker_stack.base_url, timeout=30,
                      headers={"X-API-Key": key["key"]}) as http:
        answer = http.post("/v1/jobs", files={"file": ("x", images.encode(
            images.solid(30, 30, (5, 5, 5)), "png"))}, data={"sizes": "small"})
        assert answer.status_code == 202, answer.text
        job = callback_settled(http, answer.json()["id"], worker_stack)
    assert job["callback"]["url"] == receiver.url("/hooks/default")
    assert job["callback"]["state"] == "delivered"
    assert len(receiver.posts("/hooks/default")) == 1
    refused = subprocess.run(
        [sys.executable, "-m", "thumbnail_service.admin", "keys", "create", "hooked",
         "--callback-url", "http://10.0.0.1/"],
        env=service_env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "non-public" in refused.stderr


def test_the_api_delivers_while_no_worker_runs(
    worker_stack: Stack, client: httpx.Client, receiver: Receiver
) -> None:
    """Workers may be scaled to zero right after a job: the API processes deliver too."""
    receiver.script["/hooks/no-worker"] = [500]
    job_id = submit(client, images.encode(images.solid(30, 20, (7, 7, 7)), "png"),
                    receiver.url("/hooks/no-worker"))
    wait_for(lambda: receiver.posts("/hooks/no-worker"), timeout=60, what="the first attempt")
    for worker in worker_stack.workers:  # its sweeper delivered the first attempt
        worker.stop()
    worker_stack.workers.clear()
    try:
        job = callback_settled(client, job_id, worker_stack)
        assert job["callback"]["state"] == "delivered"
        assert [a["status_code"] for a in job["callback"]["attempts"]] == [500, 200]
    finally:
        worker_stack.start_worker()
