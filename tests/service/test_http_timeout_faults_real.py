"""No client holds the API's connections open without sending its request (issue #13,
finding 5): partial or dribbled headers (slowloris), a stalled or crawling body, and a huge
declared Content-Length whose body never comes. Raw sockets against the real `thumbnail-api`,
with short limits so that the module runs in seconds; the times are printed (`pytest -s`).
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.service import images
from tests.service.conftest import API_KEY
from tests.service.stack import Stack

pytestmark = pytest.mark.services
HEADER_TIMEOUT = 2.0
BODY_IDLE_TIMEOUT = 2.0
BODY_TIMEOUT = 5.0
SERVICE_ENV = {
    "THUMBNAIL_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "THUMBNAIL_HTTP_BODY_IDLE_TIMEOUT_SECONDS": str(BODY_IDLE_TIMEOUT),
    "THUMBNAIL_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
}
# Scheduling noise of a shared 2-core machine on top of a limit.
SLACK = 1.5
# The old server never answered these: stop waiting well before pytest's own timeout.
GIVE_UP = 15.0
UPLOAD_HEAD = (
    "POST /v1/jobs HTTP/1.1\r\nHost: api\r\nX-API-Key: {key}\r\n"
    "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\r\n"
)


@pytest.fixture
def conn(stack: Stack) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=GIVE_UP)
    try:
        yield sock
    finally:
        sock.close()


def read_to_close(sock: socket.socket, started: float) -> tuple[bytes, float, float]:
    """Everything the server sends until it closes the connection: (data, seconds to the
    first byte or to the close if none came, seconds to the close), from `started`."""
    data = b""
    first: float | None = None
    while True:
        left = started + GIVE_UP - time.monotonic()
        if left <= 0:
            raise AssertionError(f"connection still open after {GIVE_UP:.0f}s; got {data!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            chunk = b""
        now = time.monotonic() - started
        if not chunk:
            return data, first if first is not None else now, now
        first = now if first is None else first
        data += chunk


def parse(response: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


def show(what: str, first: float, closed: float, status: int | None) -> None:
    print(f"\n[{what}] answer {status} after {first:.2f}s, connection closed after {closed:.2f}s")


def test_partial_headers_get_408_and_the_connection_is_closed(conn: socket.socket) -> None:
    started = time.monotonic()
    conn.sendall(f"GET /v1/jobs HTTP/1.1\r\nHost: api\r\nX-API-Key: {API_KEY}\r\n".encode())
    data, first, closed = read_to_close(conn, started)
    status, headers, body = parse(data)
    show("partial headers, then nothing", first, closed, status)
    assert status == 408 and body["error"]["code"] == "request_timeout", data
    assert headers["connection"] == "close"
    assert HEADER_TIMEOUT - 0.1 <= closed <= HEADER_TIMEOUT + SLACK


def test_dribbled_headers_are_cut_at_the_header_deadline(conn: socket.socket) -> None:
    """Slowloris: a byte every 0.2 s keeps every per-read timeout happy, never finishing."""
    request = f"GET /v1/jobs HTTP/1.1\r\nHost: api\r\nX-API-Key: {API_KEY}\r\nX-Pad: {'a' * 200}"
    started = time.monotonic()
    sent = 0
    for byte in request.encode():  # bounded: 260 bytes, GIVE_UP seconds; cut after ~2 s
        readable, _, _ = select.select([conn], [], [], 0.2)
        if readable or time.monotonic() - started > GIVE_UP:
            break
        try:
            conn.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 1
    data, first, closed = read_to_close(conn, started)
    status, _, body = parse(data)
    show(f"headers dribbled ({sent} bytes sent)", first, closed, status)
    assert status == 408 and body["error"]["code"] == "request_timeout", data
    assert closed <= HEADER_TIMEOUT + SLACK


def test_idle_connection_is_closed_without_an_answer(conn: socket.socket) -> None:
    started = time.monotonic()
    data, _, closed = read_to_close(conn, started)
    print(f"\n[connection opened, nothing sent] closed after {closed:.2f}s")
    assert data == b""
    assert closed <= HEADER_TIMEOUT + SLACK


def test_huge_declared_body_that_never_comes_gets_413_at_once(conn: socket.socket) -> None:
    started = time.monotonic()
    conn.sendall(UPLOAD_HEAD.format(key=API_KEY, length=2_000_000_000).encode())
    data, first, closed = read_to_close(conn, started)
    status, headers, body = parse(data)
    show("Content-Length 2 GB, body stalled", first, closed, status)
    assert status == 413 and body["error"]["code"] == "payload_too_large", data
    assert body["error"]["field"] == "file" and "2000000000" in body["error"]["message"]
    assert headers["connection"] == "close"
    assert first <= 1.0  # from the header, at once
    assert closed <= first + SLACK + 1.0  # after a short drain


def test_huge_declared_body_being_sent_gets_413_while_it_streams(stack: Stack) -> None:
    """A client really sending a too large upload reads the 413 (and the server stops
    reading after a bounded amount)."""
    payload = b"\x89PNG\r\n\x1a\n" + b"\0" * (30 * 1024 * 1024)
    started = time.monotonic()
    response = httpx.post(
        f"{stack.base_url}/v1/jobs", headers={"X-API-Key": API_KEY},
        files={"file": ("big.png", payload)}, timeout=GIVE_UP,
    )
    took = time.monotonic() - started
    print(f"\n[30 MB upload streaming] {response.status_code} after {took:.2f}s")
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


def test_stalled_body_gets_408_after_the_idle_timeout(conn: socket.socket) -> None:
    started = time.monotonic()
    conn.sendall(UPLOAD_HEAD.format(key=API_KEY, length=1000).encode() + b"--b\r\n")
    data, first, closed = read_to_close(conn, started)
    status, headers, body = parse(data)
    show("body stalled after 5 bytes", first, closed, status)
    assert status == 408 and body["error"]["code"] == "request_timeout", data
    assert "stalled" in body["error"]["message"]
    assert headers["connection"] == "close"
    assert BODY_IDLE_TIMEOUT - 0.1 <= first <= BODY_IDLE_TIMEOUT + SLACK


def test_crawling_body_is_cut_at_the_total_deadline(conn: socket.socket) -> None:
    """A few bytes every 0.5 s: never idle long enough, never done."""
    started = time.monotonic()
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    conn.sendall(UPLOAD_HEAD.format(key=API_KEY, length=100_000).encode() + part)
    sent = 0
    while time.monotonic() - started < GIVE_UP and sent < 100_000:  # bounded both ways
        readable, _, _ = select.select([conn], [], [], 0.5)
        if readable:
            break
        try:
            conn.send(b"x" * 10)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 10
    data, first, closed = read_to_close(conn, started)
    status, _, body = parse(data)
    show(f"body crawling ({sent} bytes in)", first, closed, status)
    assert status == 408 and body["error"]["code"] == "request_timeout", data
    assert "within" in body["error"]["message"]
    assert BODY_TIMEOUT - 0.1 <= first <= BODY_TIMEOUT + SLACK


def test_ordinary_requests_and_keep_alive_are_unaffected(stack: Stack) -> None:
    png = images.encode(images.two_halves(64, 64), "png")
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": API_KEY}) as http:
        assert http.post("/v1/jobs", files={"file": ("a.png", png)}).status_code == 202
        time.sleep(HEADER_TIMEOUT / 2)  # idle, under both the keep-alive and header limits
        assert http.get("/v1/jobs").status_code == 200
        assert http.post("/v1/jobs", files={"file": ("a.png", png)}).status_code == 202
