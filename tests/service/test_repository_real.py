"""Migrations and the job state machine against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from thumbnail_service.errors import DependencyUnavailable
from thumbnail_service.jobs import JobOptions, JobStatus, NewJob, Size, ThumbnailRecord
from thumbnail_service.migrate import MigrationError, apply_migrations, load_migrations
from thumbnail_service.repository import (
    CREATE_ATTEMPTS,
    IdempotencyKeyContended,
    JobRepository,
)

pytestmark = pytest.mark.services


async def connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn)


@pytest.fixture
async def fresh_dsn(postgres: Any) -> str:
    dsn: str = postgres.create_database(f"repo_{uuid.uuid4().hex[:10]}")
    return dsn


@pytest.fixture
async def repo(fresh_dsn: str) -> AsyncIterator[JobRepository]:
    conn = await connect(fresh_dsn)
    await apply_migrations(conn)
    await conn.close()
    pool = await asyncpg.create_pool(fresh_dsn, min_size=0, max_size=4, init=_jsonb)
    try:
        yield JobRepository(pool, lease_seconds=0.3)
    finally:
        await pool.close()


async def _jsonb(conn: asyncpg.Connection) -> None:
    import json

    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def new_job(key: str | None = None) -> NewJob:
    job_id = uuid.uuid4()
    return NewJob(
        id=job_id,
        idempotency_key=key,
        request_fingerprint="f",
        options=JobOptions(sizes=[Size(name="s", width=10, height=10)]),
        original_key=f"{job_id}/original",
        original_format="png",
        original_width=100,
        original_height=50,
        original_bytes=1234,
    )


THUMB = ThumbnailRecord("s", 10, 5, "png", "image/png", 99, "abc", "x/s")


async def test_migrations_are_idempotent_and_safe_concurrently(fresh_dsn: str) -> None:
    conns = [await connect(fresh_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, 0, len(load_migrations())]
        assert await apply_migrations(conns[0]) == []
        rows = await conns[0].fetch("SELECT version FROM schema_migrations")
        assert len(rows) == len(load_migrations())
    finally:
        for c in conns:
            await c.close()


async def test_edited_migration_is_refused(fresh_dsn: str) -> None:
    conn = await connect(fresh_dsn)
    try:
        await apply_migrations(conn)
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(conn)
    finally:
        await conn.close()


async def test_finished_job_never_moves_backwards(repo: JobRepository) -> None:
    job, created = await repo.create(new_job())
    assert created and job.status is JobStatus.QUEUED
    claimed = await repo.claim(job.id)
    assert claimed is not None and claimed.lease_token and claimed.attempts == 1
    assert await repo.claim(job.id) is None  # a duplicate message does nothing
    assert not await repo.succeed(job.id, uuid.uuid4(), [THUMB])  # wrong lease token
    assert await repo.succeed(job.id, claimed.lease_token, [THUMB])
    token = claimed.lease_token
    assert await repo.claim(job.id) is None
    assert not await repo.fail(job.id, token, "late failure")
    assert not await repo.release_for_retry(job.id, token, "late retry", 0)
    assert not await repo.renew_lease(job.id, token)
    await asyncio.sleep(0.5)
    assert job.id not in await repo.reclaim_expired()
    final = await repo.get(job.id)
    assert final is not None and final.status is JobStatus.SUCCEEDED and final.error is None
    assert [t.name for t in final.thumbnails] == ["s"]


async def test_retry_and_expired_lease_reclaim(repo: JobRepository) -> None:
    job, _ = await repo.create(new_job())
    first = await repo.claim(job.id)
    assert first is not None and first.lease_token
    assert await repo.release_for_retry(job.id, first.lease_token, "minio down", 0)
    second = await repo.claim(job.id)
    assert second is not None and second.attempts == 2 and second.lease_token
    await asyncio.sleep(0.5)  # lease (0.3 s) expires: the worker is presumed dead
    assert job.id in await repo.reclaim_expired()
    assert not await repo.succeed(job.id, second.lease_token, [THUMB])  # the zombie loses
    third = await repo.claim(job.id)
    assert third is not None and third.attempts == 3
    assert await repo.fail(job.id, third.lease_token or uuid.uuid4(), "corrupt")
    failed = await repo.get(job.id)
    assert failed is not None and failed.status is JobStatus.FAILED and failed.error == "corrupt"


async def test_idempotency_key_and_listing(repo: JobRepository) -> None:
    first, created = await repo.create(new_job("k1"))
    again, created_again = await repo.create(new_job("k1"))
    assert created and not created_again and again.id == first.id
    for _ in range(3):
        await repo.create(new_job())
    page = await repo.list_jobs(tenant="default", status=None, before=None, limit=2)
    rest = await repo.list_jobs(tenant="default", status=None,
                                before=(page[-1].created_at, page[-1].id), limit=10)
    ids = [j.id for j in page + rest]
    assert len(ids) == len(set(ids)) == 4
    assert [j.created_at for j in page + rest] == sorted(
        (j.created_at for j in page + rest), reverse=True
    )
    assert await repo.list_jobs(tenant="default", status=JobStatus.FAILED, before=None,
                                limit=10) == []
    counts = await repo.count_by_status()
    assert counts[JobStatus.QUEUED] == 4
    deleted = await repo.delete(first.id)
    assert deleted is not None and await repo.get(first.id) is None


async def test_the_empty_idempotency_key_is_a_key(repo: JobRepository) -> None:
    # "" is falsy: create() never looked the conflict up and called itself until
    # RecursionError (a 500 for a second POST with an empty Idempotency-Key).
    first, created = await repo.create(new_job(""))
    again, created_again = await repo.create(new_job(""))
    assert created and not created_again and again.id == first.id
    assert (await repo.find_by_idempotency_key("", "default")) is not None


async def test_a_key_that_keeps_vanishing_is_retried_a_bounded_number_of_times(
    repo: JobRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    await repo.create(new_job("k"))
    lookups = 0

    # The holder is gone every time we look.
    async def deleted_in_between(key: str, tenant: str) -> None:
        nonlocal lookups
        lookups += 1

    monkeypatch.setattr(repo, "find_by_idempotency_key", deleted_in_between)
    with pytest.raises(IdempotencyKeyContended):
        await repo.create(new_job("k"))
    assert lookups == CREATE_ATTEMPTS


async def test_unreachable_database_is_dependency_unavailable() -> None:
    pool = await asyncpg.create_pool("postgresql://x@127.0.0.1:1/x", min_size=0, timeout=2)
    try:
        with pytest.raises(DependencyUnavailable) as info:
            await JobRepository(pool, lease_seconds=1).ping()
        assert info.value.dependency == "postgresql"
    finally:
        await pool.close()


async def test_unmigrated_database_is_not_ready(fresh_dsn: str) -> None:
    pool = await asyncpg.create_pool(fresh_dsn, min_size=0)
    try:
        repo = JobRepository(pool, lease_seconds=1)
        with pytest.raises(DependencyUnavailable, match="run thumbnail-migrate"):
            await repo.ping()
        with pytest.raises(DependencyUnavailable, match="run thumbnail-migrate"):
            await repo.get(uuid.uuid4())
        conn = await connect(fresh_dsn)
        await apply_migrations(conn)
        await conn.close()
        await repo.ping()
    finally:
        await pool.close()
