"""Managed Redis (the Dramatiq broker): a Deployment and its Service."""

from __future__ import annotations

from collections.abc import Mapping

from thumbnail_operator import constants as c
from thumbnail_operator.builders.common import Context, Obj, container, tmp_volume
from thumbnail_operator.builders.credentials import REDIS_PASSWORD
from thumbnail_operator.builders.workloads import (
    DATA_UID,
    credentials_template_metadata,
    pod_spec,
    secret_env,
    service,
    service_port,
)


def redis_service(ctx: Context) -> Obj:
    return service(ctx, ctx.names.redis, "redis", [service_port("redis", c.REDIS_PORT)])


def redis_deployment(ctx: Context, credentials: Mapping[str, str]) -> Obj:
    probe = {"tcpSocket": {"port": "redis"}}
    main = container(
        "redis",
        ctx.spec.redis.managed.image,
        ctx.spec.redis.managed.resources.as_dict(),
        # A broker queue is transient: no RDB/AOF, so no volume to lose.
        args=["--requirepass", "$(REDIS_PASSWORD)", "--save", "", "--appendonly", "no"],
        env=[secret_env(ctx, "REDIS_PASSWORD", REDIS_PASSWORD)],
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
                # Redis reads its password from the command line at start: a rotated one
                # needs a restart (the queue itself is rebuilt by the sweeper).
                "metadata": credentials_template_metadata(
                    ctx, "redis", credentials, [REDIS_PASSWORD]
                ),
                "spec": pod_spec(ctx, DATA_UID, [main], [tmp_volume("data")], component="redis",
                                 scheduling=ctx.spec.redis.managed.scheduling),
            },
        },
    }
