"""The sweeper removes originals that no job row will ever point at (worker/orphans.py),
against the real PostgreSQL and MinIO: only old ones, only `<job id>/original` keys, never one
whose job exists."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from minio import Minio

from tests.service import images
from tests.service.stack import Stack
from tests.service.test_processing_real import submit
from thumbnail_service.repository import JobRepository, create_pool
from thumbnail_service.settings import Settings
from thumbnail_service.storage import Storage
from thumbnail_service.worker.orphans import OrphanCollector

pytestmark = pytest.mark.services


@pytest.fixture
async def parts(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[JobRepository, Storage]]:
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    pool = await create_pool(settings)
    storage = Storage(settings)
    try:
        yield JobRepository(pool, lease_seconds=60), storage
    finally:
        storage.close()
        await pool.close()


def put(s3: Minio, bucket: str, key: str) -> None:
    s3.put_object(bucket, key, io.BytesIO(b"x"), 1)


async def test_only_old_originals_without_a_job_are_removed(
    stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str],
    parts: tuple[JobRepository, Storage],
) -> None:
    repository, storage = parts
    bucket = service_env["THUMBNAIL_BUCKET_ORIGINALS"]
    job: dict[str, Any] = submit(client, images.encode(images.two_halves(40, 30), "png"))
    orphan = f"{uuid.uuid4()}/original"
    foreign = "notes/readme.txt"  # not a key the service writes: never touched
    for key in (orphan, foreign):
        put(s3, bucket, key)

    patient = OrphanCollector(repository, storage, grace_seconds=3600)
    assert await patient.collect_once() == []  # all younger than the grace

    eager = OrphanCollector(repository, storage, grace_seconds=0)
    assert await eager.collect_once() == [orphan]
    stored = {o.object_name for o in s3.list_objects(bucket, recursive=True)}
    assert orphan not in stored
    assert {f"{job['id']}/original", foreign} <= stored
