"""Managed PostgreSQL, Redis and MinIO, plus the bucket-init Job."""

from __future__ import annotations

import hashlib
import json

from thumbnail_operator import constants as c
from thumbnail_operator.builders.common import (
    Context,
    Obj,
    container,
    pod_security,
    pull_secrets,
    tmp_volume,
)
from thumbnail_operator.builders.config import external_secret_env
from thumbnail_operator.credentials import (
    DATABASE_PASSWORD,
    REDIS_PASSWORD,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
)
from thumbnail_operator.spec import Storage

JOB_RESOURCES: Obj = {
    "requests": {"cpu": "10m", "memory": "32Mi"},
    "limits": {"cpu": "200m", "memory": "128Mi"},
}
DATA_UID = 999  # the postgres and redis users of the official images
MINIO_UID = 1000


def _secret_env(ctx: Context, env: str, key: str) -> Obj:
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": ctx.names.credentials, "key": key}}}


def _pod_spec(ctx: Context, uid: int, containers: list[Obj], volumes: list[Obj]) -> Obj:
    spec: Obj = {
        "securityContext": pod_security(uid),
        "containers": containers,
        "volumes": volumes,
        "enableServiceLinks": False,
    }
    if ctx.spec.images.pull_secrets:
        spec["imagePullSecrets"] = pull_secrets(ctx.spec)
    return spec


def _stateful_set(
    ctx: Context, *, name: str, component: str, service: str, pod: Obj, storage: Storage
) -> Obj:
    """One-replica StatefulSet whose `data` volume is a claim when persistence is on."""
    persistence = ctx.spec.persistence
    spec: Obj = {
        "replicas": 1,
        "serviceName": service,
        "selector": {"matchLabels": ctx.selector(component)},
        "template": {"metadata": {"labels": ctx.labels(component)}, "spec": pod},
    }
    if persistence.enabled:
        claim: Obj = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": storage.size}},
        }
        if persistence.storage_class_name is not None:
            claim["storageClassName"] = persistence.storage_class_name
        spec["volumeClaimTemplates"] = [
            {"metadata": {"name": "data", "labels": ctx.labels(component)}, "spec": claim}
        ]
        # The PVC policy is delegated to the StatefulSet controller: with Delete it owns the
        # claims, so they are garbage-collected with the StatefulSet (and so with the CR).
        spec["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": persistence.retention_policy.value,
            "whenScaled": "Retain",
        }
    else:
        pod["volumes"] = [*pod["volumes"], {"name": "data", "emptyDir": {}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": ctx.metadata(name, component),
        "spec": spec,
    }


def _service(ctx: Context, name: str, component: str, ports: list[Obj], **spec: object) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(name, component),
        "spec": {"selector": ctx.selector(component), "ports": ports, **spec},
    }


def _port(name: str, port: int, node_port: int | None = None) -> Obj:
    body: Obj = {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
    if node_port is not None:
        body["nodePort"] = node_port
    return body


# PostgreSQL ------------------------------------------------------------------------------


def postgresql_service(ctx: Context) -> Obj:
    return _service(
        ctx, ctx.names.postgresql, "postgresql", [_port("postgresql", c.POSTGRES_PORT)],
        clusterIP="None",
    )


def postgresql_stateful_set(ctx: Context) -> Obj:
    pg = ctx.spec.postgresql
    is_ready = {
        "exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-U", pg.user, "-d", pg.database]}
    }
    main = container(
        "postgresql",
        ctx.spec.images.postgresql,
        pg.resources.as_dict(),
        env=[
            {"name": "POSTGRES_DB", "value": pg.database},
            {"name": "POSTGRES_USER", "value": pg.user},
            _secret_env(ctx, "POSTGRES_PASSWORD", DATABASE_PASSWORD),
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        ports=[{"name": "postgresql", "containerPort": c.POSTGRES_PORT, "protocol": "TCP"}],
        readinessProbe={**is_ready, "initialDelaySeconds": 5, "periodSeconds": 10},
        livenessProbe={**is_ready, "initialDelaySeconds": 30, "periodSeconds": 20},
        volumeMounts=[
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    pod = _pod_spec(ctx, DATA_UID, [main], [tmp_volume("run"), tmp_volume()])
    return _stateful_set(
        ctx,
        name=ctx.names.postgresql,
        component="postgresql",
        service=ctx.names.postgresql,
        pod=pod,
        storage=pg.storage,
    )


# Redis -----------------------------------------------------------------------------------


def redis_service(ctx: Context) -> Obj:
    return _service(ctx, ctx.names.redis, "redis", [_port("redis", c.REDIS_PORT)])


def redis_deployment(ctx: Context) -> Obj:
    probe = {"tcpSocket": {"port": "redis"}}
    main = container(
        "redis",
        ctx.spec.images.redis,
        ctx.spec.redis.resources.as_dict(),
        # A broker queue is transient: no RDB/AOF, so no volume to lose.
        args=["--requirepass", "$(REDIS_PASSWORD)", "--save", "", "--appendonly", "no"],
        env=[_secret_env(ctx, "REDIS_PASSWORD", REDIS_PASSWORD)],
        ports=[{"name": "redis", "containerPort": c.REDIS_PORT, "protocol": "TCP"}],
        readinessProbe={**probe, "initialDelaySeconds": 2, "periodSeconds": 10},
        livenessProbe={**probe, "initialDelaySeconds": 15, "periodSeconds": 20},
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.metadata(ctx.names.redis, "redis"),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": ctx.selector("redis")},
            "template": {
                "metadata": {"labels": ctx.labels("redis")},
                "spec": _pod_spec(ctx, DATA_UID, [main], [tmp_volume("data")]),
            },
        },
    }


# MinIO -----------------------------------------------------------------------------------


def minio_service(ctx: Context) -> Obj:
    return _service(ctx, ctx.names.minio, "minio", [_port("api", c.MINIO_API_PORT)])


def minio_console_service(ctx: Context) -> Obj:
    node_port = ctx.spec.minio.console.node_port
    if node_port.enabled:
        return _service(
            ctx, ctx.names.minio_console, "minio",
            [_port("console", c.MINIO_CONSOLE_PORT, node_port.port)], type="NodePort",
        )
    return _service(
        ctx, ctx.names.minio_console, "minio", [_port("console", c.MINIO_CONSOLE_PORT)],
        type="ClusterIP",
    )


def minio_stateful_set(ctx: Context) -> Obj:
    minio = ctx.spec.minio
    main = container(
        "minio",
        ctx.spec.images.minio,
        minio.resources.as_dict(),
        args=["server", "/data", "--address", f":{c.MINIO_API_PORT}",
              "--console-address", f":{c.MINIO_CONSOLE_PORT}"],
        env=[
            _secret_env(ctx, "MINIO_ROOT_USER", S3_ACCESS_KEY),
            _secret_env(ctx, "MINIO_ROOT_PASSWORD", S3_SECRET_KEY),
            {"name": "HOME", "value": "/tmp"},
        ],
        ports=[
            {"name": "api", "containerPort": c.MINIO_API_PORT, "protocol": "TCP"},
            {"name": "console", "containerPort": c.MINIO_CONSOLE_PORT, "protocol": "TCP"},
        ],
        readinessProbe={
            "httpGet": {"path": "/minio/health/ready", "port": "api"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        },
        livenessProbe={
            "httpGet": {"path": "/minio/health/live", "port": "api"},
            "initialDelaySeconds": 30,
            "periodSeconds": 20,
        },
        volumeMounts=[
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    pod = _pod_spec(ctx, MINIO_UID, [main], [tmp_volume()])
    return _stateful_set(
        ctx,
        name=ctx.names.minio,
        component="minio",
        service=ctx.names.minio,
        pod=pod,
        storage=minio.storage,
    )


# Buckets ---------------------------------------------------------------------------------


def _s3_target(ctx: Context) -> str:
    minio = ctx.spec.minio
    if minio.enabled or minio.external is None:
        return f"http://{ctx.names.minio}:{c.MINIO_API_PORT}"
    scheme = "https" if minio.external.secure else "http"
    return f"{scheme}://{minio.external.endpoint}"


def bucket_init_job(ctx: Context) -> Obj:
    buckets = ctx.spec.minio.buckets
    # `mc mb --ignore-existing` makes the Job safe to re-run; the alias retry waits for MinIO.
    script = (
        'until mc alias set target "$S3_ENDPOINT_URL" "$THUMBNAIL_S3_ACCESS_KEY" '
        '"$THUMBNAIL_S3_SECRET_KEY" >/dev/null; do echo waiting for object storage; sleep 2; done'
        f" && mc mb --ignore-existing target/{buckets.originals}"
        f" && mc mb --ignore-existing target/{buckets.thumbnails}"
    )
    secret_env = [
        _secret_env(ctx, S3_ACCESS_KEY, S3_ACCESS_KEY),
        _secret_env(ctx, S3_SECRET_KEY, S3_SECRET_KEY),
    ]
    external = [e for e in external_secret_env(ctx) if e["name"] in (S3_ACCESS_KEY, S3_SECRET_KEY)]
    main = container(
        "bucket-init",
        ctx.spec.images.minio_client,
        JOB_RESOURCES,
        command=["sh", "-c", script],
        env=[
            {"name": "S3_ENDPOINT_URL", "value": _s3_target(ctx)},
            {"name": "MC_CONFIG_DIR", "value": "/tmp/.mc"},
            *(external or secret_env),
        ],
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
    )
    pod = _pod_spec(ctx, MINIO_UID, [main], [tmp_volume()])
    pod["restartPolicy"] = "OnFailure"
    spec: Obj = {
        "backoffLimit": 6,
        "activeDeadlineSeconds": 900,
        "template": {"metadata": {"labels": ctx.labels("bucket-init")}, "spec": pod},
    }
    # A Job's template is immutable: any change to it (target, buckets, image) is a new Job
    # under a new name; the reconciler prunes the old one.
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": ctx.metadata(ctx.names.bucket_init(digest), "bucket-init"),
        "spec": spec,
    }
