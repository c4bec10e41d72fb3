"""Managed MinIO: a one-replica StatefulSet, its API Service and console Service."""

from __future__ import annotations

from collections.abc import Mapping

from thumbnail_operator import constants as c
from thumbnail_operator.builders.common import Context, Obj, container, tmp_volume
from thumbnail_operator.builders.credentials import S3_ACCESS_KEY, S3_SECRET_KEY
from thumbnail_operator.builders.workloads import (
    MINIO_UID,
    credentials_template_metadata,
    pod_spec,
    secret_env,
    service,
    service_port,
    stateful_set,
)


def minio_service(ctx: Context) -> Obj:
    return service(ctx, ctx.names.minio, "minio", [service_port("api", c.MINIO_API_PORT)])


def minio_console_service(ctx: Context) -> Obj:
    node_port = ctx.spec.object_storage.managed.console.node_port
    if node_port.enabled:
        return service(
            ctx, ctx.names.minio_console, "minio",
            [service_port("console", c.MINIO_CONSOLE_PORT, node_port.port)], type="NodePort",
        )
    return service(
        ctx, ctx.names.minio_console, "minio", [service_port("console", c.MINIO_CONSOLE_PORT)],
        type="ClusterIP",
    )


def minio_stateful_set(ctx: Context, credentials: Mapping[str, str]) -> Obj:
    minio = ctx.spec.object_storage.managed
    main = container(
        "minio",
        minio.image,
        minio.resources.as_dict(),
        args=["server", "/data", "--address", f":{c.MINIO_API_PORT}",
              "--console-address", f":{c.MINIO_CONSOLE_PORT}"],
        env=[
            secret_env(ctx, "MINIO_ROOT_USER", S3_ACCESS_KEY),
            secret_env(ctx, "MINIO_ROOT_PASSWORD", S3_SECRET_KEY),
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
    pod = pod_spec(ctx, MINIO_UID, [main], [tmp_volume()], component="minio",
                   scheduling=minio.scheduling)
    return stateful_set(
        ctx,
        name=ctx.names.minio,
        component="minio",
        service=ctx.names.minio,
        pod=pod,
        storage=minio.storage,
        template_metadata=credentials_template_metadata(
            ctx, "minio", credentials, [S3_ACCESS_KEY, S3_SECRET_KEY]
        ),
    )
