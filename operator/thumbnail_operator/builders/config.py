"""The service configuration (ConfigMap), the credentials (Secret) and their hash."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

from thumbnail_operator import constants as c
from thumbnail_operator.builders.common import Context, Obj
from thumbnail_operator.builders.endpoints import dependencies
from thumbnail_operator.credentials import (
    DATABASE_PASSWORD,
    REDIS_PASSWORD,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
)


def service_environment(ctx: Context) -> dict[str, str]:
    """Non-secret THUMBNAIL_* settings (names from docs/contracts.md)."""
    spec = ctx.spec
    pg, redis, minio, thumbs = spec.postgresql, spec.redis, spec.minio, spec.thumbnails
    deps = dependencies(ctx)
    presets = {
        name: {"width": p.width, "height": p.height} for name, p in sorted(thumbs.presets.items())
    }
    return {
        "THUMBNAIL_DATABASE_HOST": deps.postgresql.host,
        "THUMBNAIL_DATABASE_PORT": str(deps.postgresql.port),
        "THUMBNAIL_DATABASE_NAME": pg.database,
        "THUMBNAIL_DATABASE_USER": pg.user,
        "THUMBNAIL_REDIS_HOST": deps.redis.host,
        "THUMBNAIL_REDIS_PORT": str(deps.redis.port),
        "THUMBNAIL_REDIS_DB": str(redis.database),
        "THUMBNAIL_S3_ENDPOINT": deps.s3.address,
        "THUMBNAIL_S3_SECURE": _flag(deps.s3_secure),
        "THUMBNAIL_S3_REGION": deps.s3_region,
        "THUMBNAIL_BUCKET_ORIGINALS": minio.buckets.originals,
        "THUMBNAIL_BUCKET_THUMBNAILS": minio.buckets.thumbnails,
        "THUMBNAIL_AUTH_ENABLED": _flag(thumbs.auth_enabled),
        "THUMBNAIL_MAX_UPLOAD_BYTES": str(thumbs.limits.max_upload_bytes),
        "THUMBNAIL_MAX_PIXELS": str(thumbs.limits.max_pixels),
        "THUMBNAIL_JOB_TIMEOUT_SECONDS": str(thumbs.limits.job_timeout_seconds),
        "THUMBNAIL_PRESETS": json.dumps(presets, separators=(",", ":")),
        "THUMBNAIL_ALLOWED_FORMATS": ",".join(thumbs.allowed_formats),
        "THUMBNAIL_WORKER_THREADS": str(spec.worker.concurrency.threads),
        "THUMBNAIL_WORKER_PROCESSES": str(spec.worker.concurrency.processes),
        "THUMBNAIL_HOST": "0.0.0.0",
        "THUMBNAIL_PORT": str(c.API_PORT),
        "THUMBNAIL_LOG_LEVEL": thumbs.log_level,
    }


def _flag(value: bool) -> str:
    return "true" if value else "false"


def config_map(ctx: Context) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(ctx.names.config, "server"),
        "data": service_environment(ctx),
    }


def credentials_secret(ctx: Context, credentials: Mapping[str, str]) -> Obj:
    # `data` (not `stringData`) so the built object compares equal to what the API returns.
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": ctx.metadata(ctx.names.credentials, "server"),
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(credentials.items())},
    }


def external_secret_env(ctx: Context) -> list[Obj]:
    """Env entries read from user-owned Secrets; `env` wins over the operator's `envFrom`."""
    spec = ctx.spec
    refs: list[tuple[str, str, str]] = []
    if not spec.postgresql.enabled and spec.postgresql.external:
        ref = spec.postgresql.external.secret_ref
        refs.append((DATABASE_PASSWORD, ref.name, ref.key))
    if not spec.redis.enabled and spec.redis.external and spec.redis.external.secret_ref:
        ref = spec.redis.external.secret_ref
        refs.append((REDIS_PASSWORD, ref.name, ref.key))
    if not spec.minio.enabled and spec.minio.external:
        s3 = spec.minio.external.secret_ref
        refs.append((S3_ACCESS_KEY, s3.name, s3.access_key_key))
        refs.append((S3_SECRET_KEY, s3.name, s3.secret_key_key))
    return [
        {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for env, secret, key in refs
    ]


def external_secret_names(ctx: Context) -> list[str]:
    names = {
        e["valueFrom"]["secretKeyRef"]["name"] for e in external_secret_env(ctx)
    }
    return sorted(names)


def config_hash(
    environment: Mapping[str, str],
    credentials: Mapping[str, str],
    external_secrets: Mapping[str, Mapping[str, str]],
) -> str:
    """Digest of everything the server and workers read at start-up.

    It goes on their pod templates, so a change to any of it rolls them, and nothing else does.
    """
    material = json.dumps(
        {"env": environment, "credentials": credentials, "external": external_secrets},
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]
