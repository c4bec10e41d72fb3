"""Credentials for the managed components: generated once, then always reused.

The Secret the operator owns is the source of truth. Values already in it are kept as they
are; only keys that are missing (first reconcile, or a component switched to managed) get a
fresh random value, so a later reconcile never rotates anything by accident.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Mapping

from thumbnail_operator.api.v1 import ThumbnailServiceSpec

DATABASE_PASSWORD = "THUMBNAIL_DATABASE_PASSWORD"
REDIS_PASSWORD = "THUMBNAIL_REDIS_PASSWORD"
S3_ACCESS_KEY = "THUMBNAIL_S3_ACCESS_KEY"
S3_SECRET_KEY = "THUMBNAIL_S3_SECRET_KEY"
API_KEYS = "THUMBNAIL_API_KEYS"

_ALPHANUMERIC = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    """Alphanumeric only: safe in URLs, shell words and `$(VAR)` expansion."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def _generators(spec: ThumbnailServiceSpec) -> dict[str, Callable[[], str]]:
    wanted: dict[str, Callable[[], str]] = {API_KEYS: lambda: random_token(40)}
    if spec.postgresql.is_managed:
        wanted[DATABASE_PASSWORD] = lambda: random_token(32)
    if spec.redis.is_managed:
        wanted[REDIS_PASSWORD] = lambda: random_token(32)
    if spec.object_storage.is_managed:
        # MinIO wants an access key of at least 3 and a secret of at least 8 characters.
        wanted[S3_ACCESS_KEY] = lambda: "tns" + random_token(17).lower()
        wanted[S3_SECRET_KEY] = lambda: random_token(40)
    return wanted


def ensure_credentials(
    spec: ThumbnailServiceSpec, existing: Mapping[str, str] | None
) -> dict[str, str]:
    """The credentials the spec needs: existing values reused, missing ones generated."""
    current = dict(existing or {})
    return {
        key: current[key] if current.get(key) else generate()
        for key, generate in _generators(spec).items()
    }
