"""Signed renditions against the real API, PostgreSQL, Redis and MinIO: rendered once under a
stampede, then served from storage; signatures; Accept negotiation; caching headers."""

from __future__ import annotations

import concurrent.futures
import secrets
from collections import Counter
from typing import Any

import httpx
import pytest
import pyvips
from minio import Minio

from tests.service import images
from tests.service.conftest import API_KEY
from tests.service.stack import Stack, wait_for
from thumbnail_service.renditions.signing import SigningPair, signed_path

pytestmark = pytest.mark.services
# Two pairs, as during a key rotation: the API signs with the first, both verify.
PAIRS = [SigningPair(secrets.token_bytes(32), secrets.token_bytes(16)) for _ in range(2)]
SERVICE_ENV = {
    "THUMBNAIL_RENDITION_KEYS": ",".join(p.key.hex() for p in PAIRS),
    "THUMBNAIL_RENDITION_SALTS": ",".join(p.salt.hex() for p in PAIRS),
    "THUMBNAIL_RENDITION_CACHE_MAX_AGE_SECONDS": "86400",
}
MODERN = "image/avif,image/webp,image/apng,*/*;q=0.8"  # what Chromium sends for <img>


@pytest.fixture(scope="module")
def job_id(stack: Stack) -> str:
    with httpx.Client(base_url=stack.base_url, timeout=30,
                      headers={"X-API-Key": API_KEY}) as http:
        picture = images.encode(images.two_halves(640, 480), "jpg")
        answer = http.post("/v1/jobs", files={"file": ("p.jpg", picture)}, data={"sizes": "small"})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])


def _signed(client: httpx.Client, job_id: str, options: str) -> str:
    answer = client.get(f"/v1/jobs/{job_id}/rendition-url", params={"options": options})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["url"].endswith(body["path"]) and body["path"].startswith("/r/")
    return str(body["path"])


def _rendition_keys(s3: Minio, env: dict[str, str], job_id: str) -> list[str]:
    bucket = env["THUMBNAIL_BUCKET_THUMBNAILS"]
    return [o.object_name for o in s3.list_objects(bucket, prefix=f"{job_id}/renditions/",
                                                  recursive=True)]


def test_a_stampede_renders_once_then_storage_serves(
    stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str], job_id: str
) -> None:
    path = _signed(client, job_id, "w:200,h:150,fit:cover,f:jpeg,q:70")

    def fetch(_: int) -> httpx.Response:  # no API key: the signature is the permission
        return httpx.get(stack.base_url + path, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(fetch, range(20)))
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers][:3]
    outcomes = Counter(a.headers["x-rendition"] for a in answers)
    assert outcomes["rendered"] == 1, outcomes
    assert {a.content for a in answers} == {answers[0].content}
    image = pyvips.Image.new_from_buffer(answers[0].content, "")
    assert (image.width, image.height) == (200, 150)
    assert answers[0].headers["content-type"] == "image/jpeg"
    # Stored right after the answer went out (the render task goes on to store it).
    wait_for(lambda: len(_rendition_keys(s3, service_env, job_id)) == 1, timeout=10,
             what="the rendition stored")
    assert len(_rendition_keys(s3, service_env, job_id)) == 1

    again = httpx.get(stack.base_url + path, timeout=30)
    assert again.headers["x-rendition"] == "cached" and again.content == answers[0].content
    assert again.headers["cache-control"] == "public, max-age=86400, immutable"
    assert "vary" not in again.headers  # an explicit format does not depend on Accept
    etag = again.headers["etag"]
    assert etag.startswith('"') and len(etag) == 66
    unchanged = httpx.get(stack.base_url + path, headers={"If-None-Match": etag}, timeout=30)
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [(MODERN, "image/avif"), ("image/webp,*/*", "image/webp"),
     ("image/avif;q=0,image/webp", "image/webp"), ("*/*", "image/jpeg"), (None, "image/jpeg")],
)
def test_auto_format_follows_accept(
    stack: Stack, client: httpx.Client, job_id: str, accept: str | None, content_type: str
) -> None:
    path = _signed(client, job_id, "w:120")
    headers = {"Accept": accept} if accept else {}
    answer = httpx.get(stack.base_url + path, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == content_type
    assert answer.headers["vary"] == "Accept"
    image = pyvips.Image.new_from_buffer(answer.content, "")
    assert (image.width, image.height) == (120, 90)  # inside: aspect kept


def test_tampered_or_unsigned_urls_are_403(
    stack: Stack, client: httpx.Client, job_id: str
) -> None:
    path = _signed(client, job_id, "w:100,h:100")
    _, _, signature, options, job = path.split("/")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged = [
        f"/r/{flipped}/{options}/{job}",  # signature altered
        f"/r/{signature}/w:101,h:100/{job}",  # options altered
        f"/r/{signature}/{options}/{job[:-1]}0",  # another job
        f"/r/unsigned/{options}/{job}",
        signed_path(SigningPair(b"guess", b"salt"), options, job),  # a key of our own
    ]
    for url in forged:
        answer = httpx.get(stack.base_url + url, timeout=30)
        assert answer.status_code == 403, (url, answer.text)
        assert answer.json()["error"]["code"] == "invalid_signature"


def test_a_restarted_api_serves_what_was_rendered_before_from_storage(
    stack: Stack, client: httpx.Client, job_id: str
) -> None:
    """Memory is per process: a new process (or another replica) reads MinIO, then keeps it."""
    path = _signed(client, job_id, "w:90,h:90,fit:cover,f:png")
    first = httpx.get(stack.base_url + path, timeout=60)
    assert first.headers["x-rendition"] == "rendered"
    assert stack.api is not None
    stack.api.stop()  # graceful: what was served is stored before the process ends
    stack.start_api()
    answers = [httpx.get(stack.base_url + path, timeout=60) for _ in range(2)]
    assert [a.headers["x-rendition"] for a in answers] == ["stored", "cached"]
    assert {a.content for a in answers} == {first.content}
    assert {a.headers["etag"] for a in answers} == {first.headers["etag"]}


def test_the_second_pair_verifies_during_a_key_rotation(stack: Stack, job_id: str) -> None:
    answer = httpx.get(stack.base_url + signed_path(PAIRS[1], "w:64,h:64,f:png", job_id),
                       timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    ("options", "field"),
    [("w:0,h:10", "w"), ("w:10,h:99999", "h"), ("w:10,q:101", "q"), ("size:10", "options"),
     ("w:10,w:20", "w"), ("preset:nope", "preset"), ("w:10,fit:cover", "w"), ("f:gif,w:5", "f")],
)
def test_bad_options_are_422_naming_the_option(
    stack: Stack, client: httpx.Client, job_id: str, options: str, field: str
) -> None:
    refused = client.get(f"/v1/jobs/{job_id}/rendition-url", params={"options": options})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["field"] == field, refused.text
    # A URL signed by a client itself with the same options gets the same answer.
    answer = httpx.get(stack.base_url + signed_path(PAIRS[0], options, job_id), timeout=30)
    assert (answer.status_code, answer.json()["error"]["field"]) == (422, field)


def test_a_deleted_job_takes_its_renditions_with_it(
    stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str]
) -> None:
    picture = images.encode(images.solid(300, 200, (10, 200, 30)), "png")
    created: Any = client.post("/v1/jobs", files={"file": ("g.png", picture)},
                               data={"sizes": "small"}).json()
    path = _signed(client, created["id"], "preset:small")
    assert httpx.get(stack.base_url + path, timeout=60).status_code == 200
    wait_for(lambda: len(_rendition_keys(s3, service_env, created["id"])) == 1, timeout=10,
             what="the rendition stored")
    assert client.delete(f"/v1/jobs/{created['id']}").status_code == 204
    assert _rendition_keys(s3, service_env, created["id"]) == []
    gone = httpx.get(stack.base_url + path, timeout=30)  # not from memory either
    assert gone.status_code == 404, gone.text
    assert gone.json()["error"]["code"] == "job_not_found"
