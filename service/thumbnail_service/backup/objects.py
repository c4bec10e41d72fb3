"""S3 I/O of backups and restores (minio SDK, blocking: called from worker threads).

One object moves either as a server-side copy (source and destination on the same server
with the same keys: no byte crosses this pod) or streamed, get -> put, one part (at most
5 MiB for big objects: the SDK's multipart upload) in memory at a time.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from urllib3.response import BaseHTTPResponse

from ..settings import Settings
from .settings import BackupSettings

log = logging.getLogger(__name__)
_MISSING_OBJECT = frozenset({"NoSuchKey", "NoSuchObject"})
_MISSING = _MISSING_OBJECT | {"NoSuchBucket"}
# Unlike a request of the API, a backup can afford to wait for a busy server: a slow answer
# (a server-side copy of a big object answers only when done) must not fail an hour's work.
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 300
CHUNK = 1 << 20


class ObjectMissing(Exception):
    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"s3://{bucket}/{key} does not exist")
        self.bucket = bucket
        self.key = key


class ObjectMismatch(Exception):
    """The object is not the one its row describes (size or sha256)."""


@dataclass(frozen=True)
class S3Config:
    endpoint: str
    access_key: str
    secret_key: str
    secure: bool
    region: str

    @classmethod
    def service(cls, settings: Settings) -> S3Config:
        return cls(
            settings.s3_endpoint,
            settings.s3_access_key.get_secret_value(),
            settings.s3_secret_key.get_secret_value(),
            settings.s3_secure,
            settings.s3_region,
        )

    @classmethod
    def backups(cls, settings: Settings, backup: BackupSettings) -> S3Config:
        """Where backups live: the service's own object storage unless an endpoint is set."""
        if not backup.s3_endpoint:
            return cls.service(settings)
        return cls(
            backup.s3_endpoint,
            backup.s3_access_key.get_secret_value(),
            backup.s3_secret_key.get_secret_value(),
            backup.s3_secure,
            backup.s3_region,
        )

    def same_server(self, other: S3Config) -> bool:
        """Whether a server-side copy can go from one to the other: the same endpoint, as
        written, and the same identity (which must be able to read the source). An
        equivalent endpoint written differently streams instead, which is merely slower."""
        return (self.endpoint.lower(), self.secure, self.access_key) == (
            other.endpoint.lower(),
            other.secure,
            other.access_key,
        )


def client(config: S3Config, connections: int) -> Minio:
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
        retries=urllib3.Retry(
            total=5, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]
        ),
        maxsize=connections,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )
    return Minio(
        config.endpoint,
        access_key=config.access_key or None,
        secret_key=config.secret_key or None,
        secure=config.secure,
        region=config.region,
        http_client=http,
    )


def _missing(exc: S3Error) -> bool:
    return exc.code in _MISSING


class Mover:
    """Copies objects from `source` to `target` (the same client for a server-side copy)."""

    def __init__(self, source: Minio, target: Minio, *, server_side: bool) -> None:
        self.source = source
        self.target = target
        self.server_side = server_side

    def copy(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        size: int | None = None,
        sha256: str | None = None,
    ) -> int:
        """Copy one object; returns its size. With `size` / `sha256`, the object must match
        them (ObjectMismatch; a streamed copy that does not is removed again)."""
        try:
            if self.server_side:
                return self._server_side(src_bucket, src_key, dst_bucket, dst_key, size, sha256)
            return self._stream(src_bucket, src_key, dst_bucket, dst_key, size, sha256)
        except S3Error as exc:
            # A missing object is the source's (the destination bucket was made first); a
            # missing *bucket* is a misconfiguration, not a reason to leave every job out.
            if exc.code in _MISSING_OBJECT:
                raise ObjectMissing(src_bucket, src_key) from None
            raise

    def _server_side(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str,
        size: int | None, sha256: str | None,
    ) -> int:
        found = self.source.stat_object(src_bucket, src_key).size or 0
        _check_size(src_bucket, src_key, found, size)
        if sha256 is not None:
            _check_sha256(src_bucket, src_key, _digest(self.source, src_bucket, src_key), sha256)
        self.target.copy_object(dst_bucket, dst_key, CopySource(src_bucket, src_key))
        return found

    def _stream(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str,
        size: int | None, sha256: str | None,
    ) -> int:
        response = self.source.get_object(src_bucket, src_key)
        try:
            length = int(response.headers["Content-Length"])
            _check_size(src_bucket, src_key, length, size)
            reader = _HashingReader(response)
            self.target.put_object(
                dst_bucket, dst_key, cast(BinaryIO, reader), length,  # it only calls read()
                content_type=response.headers.get("Content-Type") or "application/octet-stream",
                num_parallel_uploads=1,  # our own threads are the concurrency
            )
        finally:
            response.close()
            response.release_conn()
        if sha256 is not None and reader.hexdigest() != sha256:
            self.target.remove_object(dst_bucket, dst_key)
            _check_sha256(src_bucket, src_key, reader.hexdigest(), sha256)
        return length

    def remove_quietly(self, bucket: str, keys: list[str]) -> None:
        """Best effort: what a skipped job had already copied (never read by a restore)."""
        if not keys:
            return
        try:
            for error in self.target.remove_objects(bucket, [DeleteObject(k) for k in keys]):
                log.debug("leftover %s not removed: %s", error.name, error.message)
        except Exception as exc:  # leftovers are harmless; the backup goes on
            log.debug("leftovers not removed: %s", exc)


class _HashingReader:
    """The body of a GET, hashed on its way into a PUT."""

    def __init__(self, response: BaseHTTPResponse) -> None:
        self._response = response
        self._hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._response.read(None if size < 0 else size)
        self._hash.update(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _digest(s3: Minio, bucket: str, key: str) -> str:
    response = s3.get_object(bucket, key)
    try:
        digest = hashlib.sha256()
        for chunk in response.stream(CHUNK):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        response.close()
        response.release_conn()


def _check_size(bucket: str, key: str, found: int, expected: int | None) -> None:
    if expected is not None and found != expected:
        raise ObjectMismatch(f"s3://{bucket}/{key} holds {found} bytes, its row says {expected}")


def _check_sha256(bucket: str, key: str, found: str, expected: str) -> None:
    if found != expected:
        raise ObjectMismatch(f"s3://{bucket}/{key} has sha256 {found}, its row says {expected}")


# --- whole objects and listings ----------------------------------------------------------


def ensure_bucket(s3: Minio, bucket: str) -> None:
    if s3.bucket_exists(bucket):
        return
    try:
        s3.make_bucket(bucket)
        log.info("created bucket %s", bucket)
    except S3Error as exc:  # created meanwhile by someone else: fine
        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def exists(s3: Minio, bucket: str, key: str) -> bool:
    try:
        s3.stat_object(bucket, key)
    except S3Error as exc:
        if _missing(exc):
            return False
        raise
    return True


def get_bytes(s3: Minio, bucket: str, key: str) -> bytes | None:
    """A small object (manifest, jobs file) whole; None if it does not exist."""
    try:
        response = s3.get_object(bucket, key)
    except S3Error as exc:
        if _missing(exc):
            return None
        raise
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def put_bytes(s3: Minio, bucket: str, key: str, data: bytes, content_type: str) -> None:
    s3.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)


def child_dirs(s3: Minio, bucket: str, parent: str) -> Iterator[str]:
    """Names of the "directories" right under `parent` ("" or ending in '/')."""
    for item in s3.list_objects(bucket, prefix=parent or None, recursive=False):
        if item.is_dir and item.object_name is not None:
            yield item.object_name[len(parent):].rstrip("/")


def delete_tree(s3: Minio, bucket: str, base: str, first_key: str) -> int:
    """Delete `first_key`, then every object under `base/`; returns how many were deleted.
    `first_key` (the manifest) goes first so that a deletion cut short never leaves a
    backup that looks complete but is not."""
    s3.remove_object(bucket, first_key)
    deleted = 1

    def listed() -> Iterator[DeleteObject]:  # streamed: a backup may hold millions
        nonlocal deleted
        for item in s3.list_objects(bucket, prefix=f"{base}/", recursive=True):
            if item.object_name is not None:
                deleted += 1
                yield DeleteObject(item.object_name)

    for error in s3.remove_objects(bucket, listed()):
        if error.code not in _MISSING:
            raise RuntimeError(f"cannot delete s3://{bucket}/{error.name}: {error.message}")
    return deleted
