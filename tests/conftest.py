"""Session fixtures: real PostgreSQL, Redis, MinIO and Kubernetes control plane on loopback.

Each starts on first use, lives for the session and is always torn down (context managers
plus parent-death signals, so even a killed pytest leaves no orphan servers).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from thumbnail_substrate.kube import KubeCluster
from thumbnail_substrate.minio import MinioServer
from thumbnail_substrate.postgres import PostgresServer
from thumbnail_substrate.redis import RedisServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def minio_server() -> Iterator[MinioServer]:
    with MinioServer() as server:
        yield server


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    with KubeCluster() as cluster:
        yield cluster
