"""MinIO / S3 storage for originals and thumbnails (minio SDK, run in threads).

Object keys are a pure function of (job id, size name), so a redelivered job overwrites its
objects instead of adding a second set.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self, TypeVar
from uuid import UUID

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error, ServerError
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import ConnectTimeoutError, ReadTimeoutError
from urllib3.response import BaseHTTPResponse

from .blocking import BlockingCalls
from .errors import DependencyUnavailable
from .settings import Settings

T = TypeVar("T")
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchBucket"})
# Concurrent S3 requests per process (urllib3 keeps as many connections).
STORAGE_THREADS = 16


class _Retry(urllib3.Retry):
    """Retry refused connections and 5xx answers (a restarting MinIO), never a timeout: a
    server that did not answer within the timeout is not waited for a second time."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        retry = self
        if isinstance(error, ConnectTimeoutError | ReadTimeoutError):
            retry = self.new(total=0)  # as if none were left: MaxRetryError with this cause
        return urllib3.Retry.increment(retry, method, url, response, error, _pool, _stacktrace)


class ObjectNotFound(Exception):
    pass


@dataclass(frozen=True)
class StoredObject:
    data: bytes = field(repr=False)
    content_type: str
    metadata: dict[str, str]


def original_key(job_id: UUID) -> str:
    return f"{job_id}/original"


def thumbnail_key(job_id: UUID, size_name: str) -> str:
    return f"{job_id}/{size_name}"


def renditions_prefix(job_id: UUID) -> str:
    """Where a job's renditions are kept, in the thumbnails bucket (a size name has no '/')."""
    return f"{job_id}/renditions/"


class Storage:
    def __init__(self, settings: Settings) -> None:
        self.originals = settings.bucket_originals
        self.thumbnails = settings.bucket_thumbnails
        self._endpoint = settings.s3_endpoint
        self._presign_ttl = timedelta(seconds=settings.presigned_url_ttl_seconds)
        # A dead or hung MinIO must become a 503 / a job retry within
        # THUMBNAIL_DEPENDENCY_TIMEOUT_SECONDS, not hang a request for the SDK's default
        # minute: every connect, send and read is bounded by it (a transfer that keeps
        # moving is not), and a timeout is never retried.
        timeout = settings.dependency_timeout_seconds
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=_Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=STORAGE_THREADS,
        )
        self._client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key.get_secret_value() or None,
            secret_key=settings.s3_secret_key.get_secret_value() or None,
            secure=settings.s3_secure,
            region=settings.s3_region,  # known region: presigning needs no network call
            http_client=http,
        )
        self._buckets_ready = False
        self._bucket_lock = threading.Lock()
        self._calls = BlockingCalls("minio", STORAGE_THREADS, timeout)

    def close(self) -> None:
        self._calls.close()

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await self._calls.run(fn)
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise ObjectNotFound(exc.code) from exc
            raise DependencyUnavailable("minio", f"{exc.code}: {exc.message}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            # urllib3 nests the cause in a long repr; its last clause is the useful part.
            cause = getattr(exc, "reason", None) or exc
            short = str(cause).rsplit(": ", 1)[-1] or type(cause).__name__
            raise DependencyUnavailable(
                "minio", f"cannot reach {self._endpoint} ({short})"
            ) from exc

    def _ensure_buckets_sync(self) -> None:
        # Created lazily (and on startup) so that MinIO being down at boot is not fatal.
        if self._buckets_ready:
            return
        with self._bucket_lock:
            for bucket in (self.originals, self.thumbnails):
                if not self._client.bucket_exists(bucket):
                    try:
                        self._client.make_bucket(bucket)
                    except S3Error as exc:  # another replica won the race
                        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
            self._buckets_ready = True

    async def ensure_buckets(self) -> None:
        await self._call(self._ensure_buckets_sync)

    async def ping(self) -> None:
        await self._call(lambda: self._client.bucket_exists(self.originals))

    async def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """`metadata`: user metadata (x-amz-meta-*), read back by `get_described`."""

        def upload() -> None:
            self._ensure_buckets_sync()
            self._client.put_object(
                bucket, key, io.BytesIO(data), len(data), content_type=content_type,
                metadata=metadata,  # type: ignore[arg-type]  # the SDK's alias is too narrow
            )

        await self._call(upload)

    async def get_described(self, bucket: str, key: str) -> StoredObject:
        """The object with its content type and user metadata (lower-case names)."""

        def download() -> StoredObject:
            response = self._client.get_object(bucket, key)
            try:
                prefix = "x-amz-meta-"
                return StoredObject(
                    response.read(),
                    response.headers.get("content-type", "application/octet-stream"),
                    {k.lower()[len(prefix):]: v for k, v in response.headers.items()
                     if k.lower().startswith(prefix)},
                )
            finally:
                response.close()
                response.release_conn()

        return await self._call(download)

    async def keys_under(self, bucket: str, prefix: str) -> list[str]:
        def listing() -> list[str]:
            return [o.object_name for o in self._client.list_objects(bucket, prefix=prefix,
                                                                      recursive=True)
                    if o.object_name is not None]

        return await self._call(listing)

    async def get(self, bucket: str, key: str) -> bytes:
        def download() -> bytes:
            response = self._client.get_object(bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await self._call(download)

    async def delete(self, bucket: str, keys: Iterable[str]) -> None:
        objects = [DeleteObject(k) for k in keys]

        def remove() -> None:
            errors = list(self._client.remove_objects(bucket, objects))
            real = [e for e in errors if e.code not in _MISSING_CODES]
            if real:
                raise ServerError(f"delete failed: {real[0].code} {real[0].message}", 500)

        if objects:
            await self._call(remove)

    async def list_page(
        self, bucket: str, start_after: str, limit: int
    ) -> list[tuple[str, datetime]]:
        """Up to `limit` objects after `start_after` in key order: (key, last modified)."""

        def page() -> list[tuple[str, datetime]]:
            found: list[tuple[str, datetime]] = []
            for item in self._client.list_objects(bucket, recursive=True,
                                                  start_after=start_after or None):
                if item.object_name is not None and item.last_modified is not None:
                    found.append((item.object_name, item.last_modified))
                if len(found) >= limit:
                    break
            return found

        return await self._call(page)

    async def presigned_url(self, bucket: str, key: str) -> str:
        return await self._call(
            lambda: self._client.presigned_get_object(bucket, key, expires=self._presign_ttl)
        )
