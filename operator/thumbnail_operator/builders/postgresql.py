"""Managed PostgreSQL: a one-replica StatefulSet and its headless Service."""

from __future__ import annotations

from collections.abc import Mapping

from thumbnail_operator import constants as c
from thumbnail_operator.builders.common import Context, Obj, container, tmp_volume
from thumbnail_operator.builders.credentials import DATABASE_PASSWORD
from thumbnail_operator.builders.workloads import (
    DATA_UID,
    credentials_template_metadata,
    pod_spec,
    secret_env,
    service,
    service_port,
    stateful_set,
)


def postgresql_service(ctx: Context) -> Obj:
    return service(
        ctx, ctx.names.postgresql, "postgresql", [service_port("postgresql", c.POSTGRES_PORT)],
        clusterIP="None",
    )


def postgresql_stateful_set(ctx: Context, credentials: Mapping[str, str]) -> Obj:
    pg = ctx.spec.postgresql
    is_ready = {
        "exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-U", pg.user, "-d", pg.database]}
    }
    main = container(
        "postgresql",
        pg.managed.image,
        pg.managed.resources.as_dict(),
        env=[
            {"name": "POSTGRES_DB", "value": pg.database},
            {"name": "POSTGRES_USER", "value": pg.user},
            secret_env(ctx, "POSTGRES_PASSWORD", DATABASE_PASSWORD),
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
    pod = pod_spec(ctx, DATA_UID, [main], [tmp_volume("run"), tmp_volume()],
                   component="postgresql", scheduling=pg.managed.scheduling)
    return stateful_set(
        ctx,
        name=ctx.names.postgresql,
        component="postgresql",
        service=ctx.names.postgresql,
        pod=pod,
        storage=pg.managed.storage,
        template_metadata=credentials_template_metadata(
            ctx, "postgresql", credentials, [DATABASE_PASSWORD]
        ),
    )
