"""Every bad input gets its documented 4xx with a clear message; nothing yields a 500."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service import images, schema
from tests.service.conftest import API_KEY
from tests.service.stack import Stack

pytestmark = pytest.mark.services
MAX_UPLOAD = 200_000
SERVICE_ENV = {
    "THUMBNAIL_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
    "THUMBNAIL_MAX_PIXELS": "4000000",
    "THUMBNAIL_ALLOWED_FORMATS": "jpeg,png,webp",
}
PNG = images.encode(images.two_halves(64, 48), "png")


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that *declares* width x height: a decompression bomb's header."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] and body["message"]
    return body


def post(client: httpx.Client, data: bytes = PNG, /, **fields: str) -> httpx.Response:
    return client.post("/v1/jobs", files={"file": ("upload.bin", data)}, data=fields)


# --- authentication --------------------------------------------------------------------------


def test_missing_or_wrong_api_key_is_401(stack: Stack) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        response = httpx.post(
            f"{stack.base_url}/v1/jobs", files={"file": ("a", PNG)}, headers=headers
        )
        assert error_of(response, 401)["code"] == "unauthorized"
        assert error_of(httpx.get(f"{stack.base_url}/v1/jobs", headers=headers), 401)
        assert error_of(httpx.get(f"{stack.base_url}/debug/config", headers=headers), 401)


def test_health_and_metrics_stay_open(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/healthz").json() == {"status": "ok"}
    detailed = httpx.get(f"{stack.base_url}/healthz/detailed")
    assert detailed.status_code == 200, detailed.text
    assert set(detailed.json()["checks"]) == {"postgresql", "redis", "minio"}
    assert httpx.get(f"{stack.base_url}/metrics").status_code == 200


# --- the upload itself -----------------------------------------------------------------------


def test_not_an_image_is_415(client: httpx.Client) -> None:
    body = error_of(post(client, b"hello, I am text pretending to be a JPEG" * 10), 415)
    assert body["field"] == "file" and "not a recognised image" in body["message"]


def test_format_not_allowed_is_415(client: httpx.Client) -> None:
    gif = images.encode(images.two_halves(32, 32), "gif")
    body = error_of(post(client, gif), 415)
    assert "gif is not allowed" in body["message"]


def test_declared_content_type_is_ignored(client: httpx.Client) -> None:
    response = client.post(
        "/v1/jobs", files={"file": ("a.jpg", b"GIF89a" + b"\0" * 100, "image/jpeg")}
    )
    error_of(response, 415)
    ok = client.post("/v1/jobs", files={"file": ("a.txt", PNG, "text/plain")})
    assert ok.status_code == 202, ok.text


def test_oversized_upload_is_413(client: httpx.Client) -> None:
    big = os.urandom(MAX_UPLOAD + 1)
    body = error_of(post(client, b"\x89PNG\r\n\x1a\n" + big), 413)
    assert str(MAX_UPLOAD) in body["message"]


def test_oversized_chunked_upload_is_cut_off_while_streaming(client: httpx.Client) -> None:
    boundary = "b0undary"
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
        ).encode()
        for _ in range(200):  # 200 x 64 KiB = 12.5 MiB, far past the limit
            sent += 65536
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/v1/jobs",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    error_of(response, 413)


def test_huge_declared_content_length_is_413_without_reading(stack: Stack) -> None:
    request = (
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n"
        f"X-API-Key: {API_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 999999999\r\nExpect: 100-continue\r\n\r\n"
    )
    import socket

    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall(request.encode())
        reply = sock.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply


def raw_exchange(stack: Stack, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes: status, headers, body."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"HELLO\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET \x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ],
    ids=["garbage", "header-no-colon", "bad-length", "two-lengths", "bad-chunk", "bad-target",
         "http2-preface"],
)
def test_requests_the_server_cannot_parse_get_the_json_error_shape(
    stack: Stack, request_bytes: bytes
) -> None:
    # uvicorn answered these itself: text/plain "Invalid HTTP request received."
    status, headers, body = raw_exchange(stack, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == "malformed_request" and error["field"] is None
    assert "not valid HTTP/1.1" in error["message"]


def test_a_websocket_handshake_gets_the_json_error_shape(stack: Stack) -> None:
    status, headers, body = raw_exchange(
        stack,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    assert status == 403  # was an empty text/plain body
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "websocket_not_supported"


def test_decompression_bomb_is_422_from_the_header(client: httpx.Client) -> None:
    bomb = png_header_only(20000, 20000)
    assert len(bomb) < 2000
    body = error_of(post(client, bomb), 422)
    assert body["field"] == "file" and body["code"] == "image_too_large"


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_compressed_text_chunks_cost_the_api_nothing(stack: Stack, client: httpx.Client) -> None:
    # A 64x48 PNG with three 49 KB zTXt chunks, each inflating to 50 MB: libvips' PNG loader
    # inflated them while the API probed the header (0.6 s of CPU, 150 MB of strings).
    def ztxt(inflated: int) -> bytes:
        payload = b"Comment\x00\x00" + zlib.compress(b"A" * inflated, 9)
        crc = zlib.crc32(b"zTXt" + payload)
        return struct.pack(">I", len(payload)) + b"zTXt" + payload + struct.pack(">I", crc)

    bomb = PNG[:33] + ztxt(50_000_000) * 3 + PNG[33:]
    assert len(bomb) < MAX_UPLOAD
    assert stack.api is not None
    before = process_cpu_seconds(stack.api.pid)
    response = post(client, bomb, sizes="small")
    spent = process_cpu_seconds(stack.api.pid) - before
    assert response.status_code == 202, response.text
    assert (response.json()["original"]["width"], response.json()["original"]["height"]) == (64, 48)
    assert spent < 0.15, f"the API spent {spent:.2f} s of CPU on a 150 KB upload"


def test_unreadable_header_is_422(client: httpx.Client) -> None:
    body = error_of(post(client, b"\x89PNG\r\n\x1a\n" + b"\xff" * 64), 422)
    assert body["field"] == "file"


def test_not_multipart_is_415(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", content=PNG, headers={"Content-Type": "image/png"})
    assert "multipart/form-data" in error_of(response, 415)["message"]


def test_malformed_multipart_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/jobs", content=b"--nope\r\ngarbage", headers={"Content-Type": "multipart/form-data"}
    )
    error_of(response, 400)


def test_missing_and_empty_file_are_422(client: httpx.Client) -> None:
    assert error_of(
        client.post("/v1/jobs", data={"sizes": "small"}, files={"other": ("x", b"")}), 422
    )["field"] in ("file", "other")
    assert (
        error_of(client.post("/v1/jobs", files={"sizes": (None, "small")}), 422)["field"] == "file"
    )
    assert error_of(post(client, b""), 422)["field"] == "file"


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"quality": "0"}, "quality", "1 to 100"),
        ({"quality": "101"}, "quality", "1 to 100"),
        ({"quality": "high"}, "quality", "integer"),
        ({"fit": "stretch"}, "fit", "inside, cover, smart"),
        ({"format": "bmp"}, "format", "jpeg, png, webp, avif, auto"),
        ({"sizes": "0x10"}, "sizes", "width and height"),
        ({"sizes": "99999x10"}, "sizes", "width and height"),
        ({"sizes": "enormous"}, "sizes", "neither a preset"),
        ({"sizes": "small,small"}, "sizes", "duplicate"),
        ({"sizes": ","}, "sizes", "at least one"),
        ({"sizes": ",".join(f"{i}x{i}" for i in range(1, 12))}, "sizes", "at most"),
        ({"sizes": "bad name!=10x10"}, "sizes", "must match"),
        ({"colour": "red"}, "colour", "unknown form field"),
        # str.isdigit() took these, then int() raised (a 500) or read another script's digit
        ({"quality": "\u00b2"}, "quality", "1 to 100"),  # superscript two
        ({"quality": "\u2460"}, "quality", "1 to 100"),  # circled one
        ({"quality": "\u0663"}, "quality", "1 to 100"),  # Arabic-Indic three: was taken as 3
        ({"quality": "1_0"}, "quality", "1 to 100"),
        ({"sizes": "\u0661\u0660x\u0661\u0660"}, "sizes", "neither a preset"),
    ],
)
def test_invalid_option_is_422_naming_the_field(
    client: httpx.Client, fields: dict[str, str], field: str, fragment: str
) -> None:
    body = error_of(post(client, **fields), 422)
    assert body["field"] == field
    assert fragment in body["message"], body["message"]


def test_empty_idempotency_key_is_400_every_time(client: httpx.Client) -> None:
    # The first one used to create a job under the key "", the second recursed in the
    # repository (the key is falsy, so the conflict was never looked up) until RecursionError.
    for _ in range(2):
        response = client.post(
            "/v1/jobs", files={"file": ("a", PNG)}, headers={"Idempotency-Key": ""}
        )
        body = error_of(response, 400)
        assert body["code"] == "invalid_idempotency_key" and body["field"] == "Idempotency-Key"
        assert "empty" in body["message"]


def test_idempotency_key_too_long_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/v1/jobs", files={"file": ("a", PNG)}, headers={"Idempotency-Key": "k" * 300}
    )
    assert error_of(response, 422)["field"] == "idempotency-key"


# --- reading ---------------------------------------------------------------------------------


def test_bad_job_ids_and_queries(client: httpx.Client) -> None:
    assert error_of(client.get("/v1/jobs/not-a-uuid"), 422)["field"] == "job_id"
    missing = "00000000-0000-4000-8000-000000000000"
    assert error_of(client.get(f"/v1/jobs/{missing}"), 404)["code"] == "job_not_found"
    assert error_of(client.delete(f"/v1/jobs/{missing}"), 404)
    assert error_of(client.get(f"/v1/jobs/{missing}/thumbnails/small"), 404)
    assert error_of(client.get("/v1/jobs", params={"cursor": "garbage"}), 400)["field"] == "cursor"
    assert error_of(client.get("/v1/jobs", params={"limit": 0}), 422)["field"] == "limit"
    for limit in ("\u0663", "\u00b2", "1_0", "+3", "3.0"):  # pydantic took the last three
        assert error_of(client.get("/v1/jobs", params={"limit": limit}), 422)["field"] == "limit"
    assert error_of(client.get("/v1/jobs", params={"status": "done"}), 422)["field"] == "status"
    assert error_of(client.get("/nowhere"), 404)["code"] == "not_found"
    assert error_of(client.put("/v1/jobs"), 405)


def cursor_of(created_at: str, job_id: str = "00000000-0000-4000-8000-000000000000") -> str:
    return base64.urlsafe_b64encode(f"{created_at}|{job_id}".encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of("0001-01-01T00:00:00+14:00"),  # UTC is year 0: asyncpg raised, a 500
        cursor_of("9999-12-31T23:59:59-14:00"),  # UTC is year 10000
        cursor_of("0001-01-01T00:00:00+00:00"),  # valid for SQL, but no job is that old
        cursor_of("2026-01-01T00:00:00+02:00"),  # we only ever write UTC
        cursor_of("2026-01-01T00:00:00Z"),  # another spelling of what we write
        cursor_of("2026-01-01T00:00:00+00:00", "\u0663" * 32),  # UUID() takes other digits
        cursor_of("2026-01-01T00:00:00+00:00") + "=",  # padding we never write
        "A" * 129,  # longer than any cursor
    ],
)
def test_a_cursor_we_did_not_write_is_400_and_the_connection_survives(
    stack: Stack, cursor: str
) -> None:
    """Raw keep-alive socket: a 500 used to make uvicorn close the connection as well."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        replies = []
        for query in (f"cursor={cursor}", "limit=1"):
            sock.sendall(
                f"GET /v1/jobs?{query} HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n\r\n"
                .encode()
            )
            replies.append(read_response(sock))
    (status, body), (next_status, _) = replies
    assert status == 400, body
    assert json.loads(body)["error"] == {
        "code": "invalid_cursor",
        "message": "cursor is not a next_cursor returned by this API; omit it to start from "
        "the newest",
        "field": "cursor",
    }
    assert next_status == 200


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                  if k.strip().lower() == "content-length")
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(lines[0].split()[1]), body


JOB = "/v1/jobs/00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/jobs", "GET, POST"),  # was "POST": the first route of the path only
        (JOB, "DELETE, GET"),  # was "GET"
        (f"{JOB}/thumbnails/small", "GET"),
        ("/healthz", "GET"),
        ("/metrics", "GET"),
        ("/openapi.json", "GET, HEAD"),
    ],
)
def test_405_lists_every_method_of_the_path(
    client: httpx.Client, path: str, allowed: str
) -> None:
    for method in ("PUT", "PATCH", *{"DELETE", "POST"} - set(allowed.split(", "))):
        response = client.request(method, path)
        body = error_of(response, 405)
        assert response.headers["allow"] == allowed, (method, path)
        assert body["code"] == "method_not_allowed" and allowed in body["message"]
    for method in allowed.split(", "):  # and each of them is really served there
        assert client.request(method, path).status_code != 405, (method, path)


def test_thumbnail_of_unfinished_job_is_409(client: httpx.Client) -> None:
    job = post(client, sizes="small").json()  # no worker runs in this module
    body = error_of(client.get(f"/v1/jobs/{job['id']}/thumbnails/small"), 409)
    assert "queued" in body["message"]
    assert error_of(client.get(f"/v1/jobs/{job['id']}/thumbnails/large"), 404)


# --- robustness ------------------------------------------------------------------------------

field_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            *("small", "1x1", "0x0", "-1x5", "a=1x1", "4096x4096", "avif", "auto", "smart"),
            *("100", "1e3", "1_0", "a\n=1x1"),
            *("\u00b2", "\u2460", "\u0663", "\u0661x\u0661"),  # digits of other scripts
        ]
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.just(PNG),
        st.binary(max_size=64).map(lambda tail: PNG[:40] + tail),
    ),
    fields=st.dictionaries(
        st.sampled_from(["sizes", "fit", "format", "quality", "x"]), field_values, max_size=4
    ),
)
def test_no_input_produces_a_500(client: httpx.Client, data: bytes, fields: dict[str, str]) -> None:
    response = post(client, data, **fields)
    assert response.status_code in (202, 400, 413, 415, 422), response.text
    if response.status_code != 202:
        assert response.json()["error"]["message"]


def test_openapi_documents_statuses_and_the_upload(stack: Stack) -> None:
    spec = httpx.get(f"{stack.base_url}/openapi.json").json()
    post_op = spec["paths"]["/v1/jobs"]["post"]
    assert {"202", "400", "401", "409", "413", "415", "422", "503"} <= set(post_op["responses"])
    form = post_op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form["properties"]) == {"file", "sizes", "fit", "format", "quality",
                                       "callback_url"}
    assert "X-API-Key" in str(spec["components"]["securitySchemes"])
    download = spec["paths"]["/v1/jobs/{job_id}/thumbnails/{name}"]["get"]["responses"]
    assert {"200", "304", "307", "404", "409"} <= set(download)


@pytest.fixture(scope="module")
def openapi(stack: Stack) -> dict[str, Any]:
    spec: dict[str, Any] = httpx.get(f"{stack.base_url}/openapi.json").json()
    return spec


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"sizes": "small,300x200, banner=1200x400", "fit": "smart", "quality": "55"},
        {"sizes": ",".join(f"s{i}={i}x{i}" for i in range(1, 11))},  # 10: the limit
        {"sizes": ",".join(f"s{i}={i}x{i}" for i in range(1, 12))},  # 11 sizes
        {"sizes": "enormous"},  # not a preset
        {"sizes": "4097x10"},
        {"sizes": "\u0661\u0660x\u0661\u0660"},
        {"colour": "red"},  # unknown field
        {"quality": "101"},
        {"quality": "\u00b2"},
        {"quality": "1_0"},
        {"fit": "stretch"},
        {"format": "bmp"},
    ],
)
def test_the_served_schema_admits_a_form_exactly_when_the_api_accepts_it(
    client: httpx.Client, openapi: dict[str, Any], fields: dict[str, str]
) -> None:
    # It declared `sizes` a free string, allowed any other field and said nothing of the
    # presets, the limits or how many sizes a job may have.
    admitted = schema.admits(schema.upload_form(openapi), {"file": "<binary>", **fields})
    response = post(client, **fields)
    assert admitted == (response.status_code == 202), (fields, response.text)


@pytest.mark.parametrize(
    ("name", "value"),
    [("cursor", ""), ("cursor", "garbage"), ("cursor", "a+b"), ("cursor", "A" * 129),
     ("limit", "100"), ("limit", "101"), ("limit", "\u0663"), ("limit", "1_0")],
)
def test_the_served_schema_admits_a_query_only_when_the_api_may_accept_it(
    client: httpx.Client, openapi: dict[str, Any], name: str, value: str
) -> None:
    admitted = schema.admits(schema.parameter(openapi, "/v1/jobs", "get", name), value)
    response = client.get("/v1/jobs", params={name: value})
    if not admitted:
        assert response.status_code in (400, 422), response.text
    if response.status_code == 200:
        assert admitted


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_sizes_the_served_schema_admits_are_accepted(
    client: httpx.Client, openapi: dict[str, Any], data: st.DataObject
) -> None:
    pattern = schema.upload_form(openapi)["properties"]["sizes"]["pattern"]
    sizes = data.draw(st.from_regex(pattern, fullmatch=True))
    names = [i.strip().split("=")[0] for i in sizes.split(",")]
    if len(set(names)) == len(names):  # distinct names: the one rule a schema cannot state
        response = post(client, sizes=sizes)
        assert response.status_code == 202, (sizes, response.text)


def test_debug_endpoints_redact_every_secret(stack: Stack, client: httpx.Client) -> None:
    config = client.get("/debug/config")
    assert config.status_code == 200
    for name in (
        "THUMBNAIL_DATABASE_PASSWORD",
        "THUMBNAIL_S3_SECRET_KEY",
        "THUMBNAIL_S3_ACCESS_KEY",
    ):
        assert stack.env[name] not in config.text
    assert API_KEY not in config.text
    assert config.json()["database_password"] == "**********"
    info = client.get("/debug/info").json()
    assert info["libvips"] and info["python"] and "jpeg" in info["allowed_input_formats"]


def test_metrics_expose_requests_jobs_and_queue(stack: Stack, client: httpx.Client) -> None:
    client.get("/v1/jobs")
    text = httpx.get(f"{stack.base_url}/metrics").text
    assert 'thumbnail_http_requests_total{method="GET",route="/v1/jobs",status="200"}' in text
    assert "thumbnail_http_request_duration_seconds_bucket" in text
    assert 'thumbnail_jobs{status="queued"}' in text
    assert 'thumbnail_queue_depth{state="ready"}' in text
    for dependency in ("postgresql", "redis", "minio"):  # minio had no series
        assert f'thumbnail_dependency_up{{dependency="{dependency}"}} 1.0' in text
