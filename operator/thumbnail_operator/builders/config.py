"""The service configuration (ConfigMap), the credentials (Secret) and their hash."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import RetentionPolicy
from thumbnail_operator.builders.common import Context, Obj
from thumbnail_operator.builders.credentials import (
    DATABASE_PASSWORD,
    REDIS_PASSWORD,
    ROTATED_AT_ANNOTATION,
    ROTATION_ANNOTATION,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    Rotation,
)
from thumbnail_operator.builders.endpoints import dependencies


def service_environment(ctx: Context) -> dict[str, str]:
    """Non-secret THUMBNAIL_* settings (names from docs/contracts.md)."""
    spec = ctx.spec
    pg, redis, storage, thumbs = spec.postgresql, spec.redis, spec.object_storage, spec.thumbnails
    deps = dependencies(ctx)
    # By name, as a v1alpha1 map always rendered them: the order of the v1 list carries no
    # meaning for the service, and a reordered list must not change the hash (and roll pods).
    presets = {
        p.name: {"width": p.width, "height": p.height}
        for p in sorted(thumbs.presets, key=lambda p: p.name)
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
        "THUMBNAIL_BUCKET_ORIGINALS": storage.buckets.originals,
        "THUMBNAIL_BUCKET_THUMBNAILS": storage.buckets.thumbnails,
        "THUMBNAIL_AUTH_ENABLED": _flag(thumbs.auth_enabled),
        "THUMBNAIL_CONSOLE_ENABLED": _flag(spec.server.console.enabled),
        "THUMBNAIL_MAX_UPLOAD_BYTES": str(thumbs.limits.max_upload_bytes),
        "THUMBNAIL_MAX_PIXELS": str(thumbs.limits.max_pixels),
        "THUMBNAIL_JOB_TIMEOUT_SECONDS": str(thumbs.limits.job_timeout_seconds),
        "THUMBNAIL_RATE_LIMIT_PER_MINUTE": str(thumbs.limits.rate_limit_per_minute),
        "THUMBNAIL_TENANT_QUOTA_BYTES": str(thumbs.limits.tenant_quota_bytes),
        "THUMBNAIL_PRESETS": json.dumps(presets, separators=(",", ":")),
        "THUMBNAIL_ALLOWED_FORMATS": ",".join(thumbs.allowed_formats),
        "THUMBNAIL_WORKER_THREADS": str(spec.workers.concurrency.threads),
        "THUMBNAIL_WORKER_PROCESSES": str(spec.workers.concurrency.processes),
        "THUMBNAIL_HOST": "0.0.0.0",
        "THUMBNAIL_PORT": str(c.API_PORT),
        "THUMBNAIL_LOG_LEVEL": thumbs.log_level.value,
        "THUMBNAIL_RENDITION_PRESETS_ONLY": _flag(thumbs.renditions.presets_only),
        "THUMBNAIL_RENDITION_CACHE_MAX_AGE_SECONDS": str(thumbs.renditions.cache_max_age_seconds),
        "THUMBNAIL_RENDITION_PROCESSES": str(thumbs.renditions.processes),
        "THUMBNAIL_WEBHOOK_ALLOWED_NETWORKS": ",".join(thumbs.webhooks.allowed_networks),
        "THUMBNAIL_WEBHOOK_MAX_ATTEMPTS": str(thumbs.webhooks.max_attempts),
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


def credentials_copy_secret(
    ctx: Context, credentials: Mapping[str, str], rotation: Rotation | None = None
) -> Obj:
    """The operator's copy of the credentials, restored from when the Secret is deleted, and
    the record of the last rotation (the annotation value handled, and when).

    With persistence `Retain` it has no owner, like the volumes it opens: a ThumbnailService
    re-created with the same name finds its old credentials again."""
    secret = credentials_secret(ctx, credentials)
    secret["metadata"] = ctx.metadata(ctx.names.credentials_copy, "credentials-copy")
    persistence = ctx.spec.persistence
    if persistence.enabled and persistence.retention_policy is RetentionPolicy.RETAIN:
        del secret["metadata"]["ownerReferences"]
    secret["metadata"]["annotations"] = {
        f"{c.GROUP}/purpose": f"copy of {ctx.names.credentials}; edit that Secret, not this one",
        **({ROTATION_ANNOTATION: rotation.token, ROTATED_AT_ANNOTATION: rotation.at}
           if rotation else {}),
    }
    return secret


def external_secret_env(ctx: Context) -> list[Obj]:
    """Env entries read from user-owned Secrets; `env` wins over the operator's `envFrom`."""
    spec = ctx.spec
    refs: list[tuple[str, str, str]] = []
    if (database := spec.postgresql.connection) is not None:
        refs.append((DATABASE_PASSWORD, database.secret_ref.name, database.secret_ref.key))
    if (broker := spec.redis.connection) is not None and broker.secret_ref is not None:
        refs.append((REDIS_PASSWORD, broker.secret_ref.name, broker.secret_ref.key))
    if (objects := spec.object_storage.connection) is not None:
        s3 = objects.secret_ref
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
