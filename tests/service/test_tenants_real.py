"""Tenants against the real API and PostgreSQL: keys made with thumbnail-admin, each tenant
blind to the others' jobs, idempotency keys per tenant, revocation, only hashes stored."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any

import asyncpg
import httpx
import pytest

from tests.service import images
from tests.service.conftest import API_KEY
from tests.service.stack import Stack, wait_for

pytestmark = pytest.mark.services
QUOTA = 250_000
# Renditions on, so that another tenant's rendition-url reaches the job lookup.
SERVICE_ENV = {"THUMBNAIL_TENANT_QUOTA_BYTES": str(QUOTA),
               "THUMBNAIL_RENDITION_KEYS": "ab" * 32, "THUMBNAIL_RENDITION_SALTS": "cd" * 16}


def admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "thumbnail_service.admin", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def new_key(env: dict[str, str], tenant: str, *extra: str) -> dict[str, Any]:
    made = admin(env, "keys", "create", tenant, "--name", f"{tenant} test", *extra)
    assert made.returncode == 0, made.stderr
    key: dict[str, Any] = json.loads(made.stdout)
    assert key["tenant"] == tenant and key["id"].startswith("key_")
    assert key["key"] not in made.stderr
    return key


def client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, headers={"X-API-Key": key}, timeout=30)


def submit(http: httpx.Client, **headers: str) -> Any:
    answer = http.post("/v1/jobs", files={"file": ("p.png", images.encode(
        images.solid(40, 30, (9, 9, 9)), "png"))}, data={"sizes": "small"}, headers=headers)
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def test_a_tenant_sees_lists_downloads_and_deletes_only_its_own_jobs(
    worker_stack: Stack, service_env: dict[str, str]
) -> None:
    acme, globex = new_key(service_env, "acme"), new_key(service_env, "globex")
    with client(worker_stack, acme["key"]) as a, client(worker_stack, globex["key"]) as b, \
            client(worker_stack, API_KEY) as default:
        job = submit(a)
        wait_for(lambda: a.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded",
                 timeout=60, what="acme's job")
        for other in (b, default):
            for method, path in (("GET", f"/v1/jobs/{job['id']}"),
                                 ("GET", f"/v1/jobs/{job['id']}/thumbnails/small"),
                                 ("GET", f"/v1/jobs/{job['id']}/rendition-url?options=w:5"),
                                 ("DELETE", f"/v1/jobs/{job['id']}")):
                answer = other.request(method, path)
                assert answer.status_code == 404, (method, path, answer.text)
                assert answer.json()["error"]["code"] == "job_not_found"
            assert job["id"] not in [j["id"] for j in other.get("/v1/jobs").json()["items"]]
        assert [j["id"] for j in a.get("/v1/jobs").json()["items"]] == [job["id"]]
        assert a.get(f"/v1/jobs/{job['id']}/thumbnails/small").status_code == 200
        assert a.delete(f"/v1/jobs/{job['id']}").status_code == 204


def test_idempotency_keys_belong_to_their_tenant(
    stack: Stack, service_env: dict[str, str]
) -> None:
    one, two = new_key(service_env, "one"), new_key(service_env, "two")
    with client(stack, one["key"]) as a, client(stack, two["key"]) as b:
        first, second = submit(a, **{"Idempotency-Key": "same"}), submit(b, **{
            "Idempotency-Key": "same"})
        assert first["id"] != second["id"]
        assert submit(a, **{"Idempotency-Key": "same"})["id"] == first["id"]


async def test_only_hashes_are_stored_and_a_revoked_key_is_refused(
    stack: Stack, service_env: dict[str, str], db: asyncpg.Connection
) -> None:
    key = new_key(service_env, "initech")
    rows = [dict(r) for r in await db.fetch("SELECT * FROM api_keys WHERE id = $1", key["id"])]
    assert rows[0]["sha256"] == hashlib.sha256(key["key"].encode()).hexdigest()
    assert key["key"] not in json.dumps(rows, default=str)
    listed = admin(service_env, "keys", "list", "initech")
    assert key["id"] in listed.stdout and key["key"] not in listed.stdout
    with client(stack, key["key"]) as http:
        assert http.get("/v1/jobs").status_code == 200
        revoked = admin(service_env, "keys", "revoke", key["id"])
        assert revoked.returncode == 0, revoked.stderr
        wait_for(lambda: http.get("/v1/jobs").status_code == 401, timeout=20,
                 what="the revoked key refused (within the 10 s lookup cache)")
    assert admin(service_env, "keys", "revoke", key["id"]).returncode == 1  # already
    bad = admin(service_env, "keys", "create", "Not A Tenant")
    assert bad.returncode == 2 and "must match" in bad.stderr


def test_a_key_past_its_rate_limit_gets_429_with_retry_after(
    stack: Stack, service_env: dict[str, str]
) -> None:
    key = new_key(service_env, "chatty", "--rate-limit", "3")
    assert key["rate_limit_per_minute"] == 3
    with client(stack, key["key"]) as http:
        assert [http.get("/v1/jobs").status_code for _ in range(3)] == [200] * 3
        refused = http.get("/v1/jobs")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    with client(stack, API_KEY) as other:  # another key's window is its own
        assert other.get("/v1/jobs").status_code == 200
    metrics = httpx.get(f"{stack.base_url}/metrics").text
    assert (f'thumbnail_key_requests_total{{key_id="{key["id"]}",outcome="limited",'
            f'tenant="chatty"}} 1.0') in metrics
    assert key["key"] not in metrics and API_KEY not in metrics


def test_a_submission_past_the_tenant_quota_is_refused(
    stack: Stack, service_env: dict[str, str]
) -> None:
    key = new_key(service_env, "hoarder")
    big = images.encode(images.noise(300, 200), "png")
    assert QUOTA / 2 < len(big) < QUOTA
    with client(stack, key["key"]) as http:
        first = http.post("/v1/jobs", files={"file": ("n.png", big)}, data={"sizes": "small"})
        assert first.status_code == 202, first.text
        second = http.post("/v1/jobs", files={"file": ("n.png", big)}, data={"sizes": "small"})
        assert second.status_code == 403, second.text
        error = second.json()["error"]
        assert error["code"] == "quota_exceeded" and str(QUOTA) in error["message"]
        assert http.delete(f"/v1/jobs/{first.json()['id']}").status_code == 204
        again = http.post("/v1/jobs", files={"file": ("n.png", big)}, data={"sizes": "small"})
        assert again.status_code == 202, again.text  # deleting made room
