"""Failures as the one line an operator reads in the pod's termination message."""

from __future__ import annotations

import asyncpg
import urllib3
from minio.error import S3Error


class BackupError(Exception):
    """An expected refusal or a damaged backup: its message is the whole explanation."""


def describe(exc: BaseException) -> str:
    if isinstance(exc, BackupError):
        text = str(exc)
    elif isinstance(exc, S3Error):
        where = "/".join(p for p in (exc.bucket_name, exc.object_name) if p)
        text = f"object storage: {exc.code}: {exc.message}" + (f" (s3://{where})" if where else "")
    elif isinstance(exc, urllib3.exceptions.MaxRetryError):
        where = f" {exc.pool.host}:{exc.pool.port}" if exc.pool is not None else ""
        text = f"cannot reach object storage{where} ({exc.reason})"
    elif isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        text = f"postgresql: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())
