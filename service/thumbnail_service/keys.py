"""API keys as records: each belongs to a tenant; only the SHA-256 of its secret is stored.

The keys of THUMBNAIL_API_KEYS (the operator's Secret, rotated by it) are the DEFAULT_TENANT's
and are not stored; `thumbnail-admin keys` creates, lists and revokes the others.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .jobs import DEFAULT_TENANT
from .repository import JobRepository

__all__ = ["DEFAULT_TENANT", "ApiKey", "ApiKeys", "Principal"]

TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# A found key is trusted this long without asking PostgreSQL again: a revocation takes
# effect within it on every API replica.
LOOKUP_CACHE_SECONDS = 10.0
_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    rate_limit_per_minute: int | None = None
    callback_url: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who a request is: its tenant, the key's id (never its secret), the key's own rate
    limit (None: the service's) and default completion webhook."""

    tenant: str
    key_id: str
    rate_limit_per_minute: int | None = None
    callback_url: str | None = None


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def env_key_id(secret: str) -> str:
    """The id a THUMBNAIL_API_KEYS key is known by (in metrics): derived, not stored."""
    return "env_" + fingerprint(secret)[:12]


def check_tenant(tenant: str) -> str:
    if not TENANT_PATTERN.match(tenant):
        raise ValueError(f"tenant {tenant!r} must match {TENANT_PATTERN.pattern}")
    return tenant


class ApiKeys:
    """Key records through the repository's bounded connections (an outage is a 503)."""

    def __init__(self, repository: JobRepository) -> None:
        self._connection = repository.connection
        self._found: dict[str, tuple[float, Principal | None]] = {}

    async def create(
        self, tenant: str, name: str = "", rate_limit_per_minute: int | None = None,
        callback_url: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key of `tenant`: the record and the secret (shown once, never stored)."""
        secret = "tk_" + secrets.token_urlsafe(30)
        key_id = "key_" + secrets.token_hex(6)
        async with self._connection() as conn:
            row = await conn.fetchrow(
                """INSERT INTO api_keys (id, tenant, name, sha256, rate_limit_per_minute,
                       callback_url)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
                key_id, check_tenant(tenant), name, fingerprint(secret), rate_limit_per_minute,
                callback_url,
            )
        return _key(row), secret

    async def list(self, tenant: str | None = None) -> list[ApiKey]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                """SELECT * FROM api_keys WHERE $1::text IS NULL OR tenant = $1
                   ORDER BY tenant, created_at""", tenant)
        return [_key(r) for r in rows]

    async def revoke(self, key_id: str) -> bool:
        async with self._connection() as conn:
            result = await conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                key_id)
        return str(result).endswith(" 1")

    async def lookup(self, secret: str) -> Principal | None:
        """The live key with this secret, cached LOOKUP_CACHE_SECONDS (found or not)."""
        digest = fingerprint(secret)
        now = time.monotonic()
        cached = self._found.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._connection() as conn:
            row = await conn.fetchrow(
                """SELECT id, tenant, rate_limit_per_minute, callback_url FROM api_keys
                   WHERE sha256 = $1 AND revoked_at IS NULL""",
                digest)
        found = None if row is None else Principal(
            row["tenant"], row["id"], row["rate_limit_per_minute"], row["callback_url"])
        if len(self._found) >= _CACHE_LIMIT:  # a flood of made-up keys: start over
            self._found.clear()
        self._found[digest] = (now + LOOKUP_CACHE_SECONDS, found)
        return found


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(row["id"], row["tenant"], row["name"], row["created_at"], row["revoked_at"],
                  row["rate_limit_per_minute"], row["callback_url"])
