"""Smoke tests proving PostgreSQL, Redis and MinIO are real servers (each would fail on a fake)."""

from __future__ import annotations

import urllib.request
import uuid

import asyncpg
import redis
from minio import Minio

from thumbnail_substrate.minio import MinioServer
from thumbnail_substrate.postgres import PostgresServer
from thumbnail_substrate.redis import RedisServer


async def test_postgres_runs_sql_with_password_auth(postgres: PostgresServer) -> None:
    conn = await asyncpg.connect(postgres.dsn)
    try:
        version = await conn.fetchval("SHOW server_version_num")
        assert int(version) >= 150000
        # A real planner: generate_series plus aggregation, not a canned answer.
        assert await conn.fetchval("SELECT sum(x) FROM generate_series(1, 100) AS x") == 5050
    finally:
        await conn.close()
    wrong = postgres.dsn.replace(postgres.password, "wrong-password")
    try:
        await asyncpg.connect(wrong)
    except asyncpg.InvalidPasswordError:
        pass
    else:
        raise AssertionError("password authentication is not enforced")


def test_redis_round_trip_and_list_semantics(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    key = f"smoke:{uuid.uuid4()}"
    client.rpush(key, "a", "b", "c")
    assert client.lpop(key) == b"a"
    assert client.llen(key) == 2
    assert client.info("server")["redis_version"]


def test_minio_bucket_put_get_and_presigned_url(minio_server: MinioServer) -> None:
    client = Minio(
        minio_server.endpoint,
        access_key=minio_server.access_key,
        secret_key=minio_server.secret_key,
        secure=False,
    )
    bucket = f"smoke-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    assert client.bucket_exists(bucket)
    payload = uuid.uuid4().bytes * 100
    import io

    client.put_object(bucket, "obj.bin", io.BytesIO(payload), len(payload))
    response = client.get_object(bucket, "obj.bin")
    try:
        assert response.read() == payload
    finally:
        response.close()
        response.release_conn()
    url = client.presigned_get_object(bucket, "obj.bin")
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.read() == payload
    # A tampered signature must be refused: proves signatures are really checked.
    try:
        urllib.request.urlopen(url[:-4] + "0000", timeout=5)
    except urllib.error.HTTPError as err:
        assert err.code == 403
    else:
        raise AssertionError("MinIO accepted a forged presigned URL")
