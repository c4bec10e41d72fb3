"""Fixtures for the service tests: a private database, queue and buckets per test module, the
API and worker as real processes, and HTTP / storage / database clients to inspect them."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from minio import Minio

from tests.service.stack import Stack
from thumbnail_substrate.process import free_port

API_KEY = "test-key-" + uuid.uuid4().hex[:8]

# Fast recovery so the tests run in seconds (production defaults are minutes).
FAST_RECOVERY = {
    "THUMBNAIL_JOB_LEASE_SECONDS": "4",
    "THUMBNAIL_SWEEP_INTERVAL_SECONDS": "1",
    "THUMBNAIL_RETRY_MIN_BACKOFF_SECONDS": "0.5",
    "THUMBNAIL_RETRY_MAX_BACKOFF_SECONDS": "2",
    "THUMBNAIL_MAX_ATTEMPTS": "4",
}


def module_overrides(request: pytest.FixtureRequest) -> dict[str, str]:
    """A module may set SERVICE_ENV = {...} to tune its stack."""
    return dict(getattr(request.module, "SERVICE_ENV", {}))


@pytest.fixture(scope="module")
def service_env(
    request: pytest.FixtureRequest, postgres: Any, redis_server: Any, minio_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:10]
    database = f"svc_{suffix}"
    postgres.create_database(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBNAIL_")}
    env.update(postgres.env())
    env.update(redis_server.env())
    env.update(minio_server.env())
    env.update(FAST_RECOVERY)
    env.update(
        {
            "THUMBNAIL_DATABASE_NAME": database,
            "THUMBNAIL_QUEUE_NAME": f"thumbnails-{suffix}",
            "THUMBNAIL_BUCKET_ORIGINALS": f"raws-{suffix}",
            "THUMBNAIL_BUCKET_THUMBNAILS": f"thumbnails-{suffix}",
            "THUMBNAIL_API_KEYS": f"other-key,{API_KEY}",
            "THUMBNAIL_HOST": "127.0.0.1",
            "THUMBNAIL_PORT": str(free_port()),
            "THUMBNAIL_WORKER_THREADS": "2",
            "THUMBNAIL_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            # The processes' temporary files (uploads, libvips, the worker's metrics
            # directory) in pytest's own temporary directory: nothing left in /tmp by a
            # worker a test SIGKILLs.
            "TMPDIR": str(tmp_path_factory.mktemp("tmp")),
        }
    )
    env.update(module_overrides(request))
    return env


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logdir: Path = tmp_path_factory.mktemp("stack")
    stack = Stack(service_env, logdir, int(service_env["THUMBNAIL_PORT"]))
    result = stack.migrate()
    assert result.returncode == 0, result.stdout + result.stderr
    stack.start_api()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def worker_stack(stack: Stack) -> Stack:
    """The stack with one worker running (tests that kill workers start their own)."""
    stack.start_worker()
    return stack


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": API_KEY}, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def s3(service_env: dict[str, str]) -> Minio:
    return Minio(
        service_env["THUMBNAIL_S3_ENDPOINT"],
        access_key=service_env["THUMBNAIL_S3_ACCESS_KEY"],
        secret_key=service_env["THUMBNAIL_S3_SECRET_KEY"],
        secure=False,
    )


@pytest.fixture
async def db(service_env: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(
        host=service_env["THUMBNAIL_DATABASE_HOST"],
        port=int(service_env["THUMBNAIL_DATABASE_PORT"]),
        user=service_env["THUMBNAIL_DATABASE_USER"],
        password=service_env["THUMBNAIL_DATABASE_PASSWORD"],
        database=service_env["THUMBNAIL_DATABASE_NAME"],
    )
    try:
        yield conn
    finally:
        await conn.close()
