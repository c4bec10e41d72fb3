"""Pure builders: a typed spec in, every child object out as a plain dict.

No I/O here (like CloudNativePG's pkg/specs): the reconciler gathers the inputs that live in
the cluster (existing credentials, user Secrets) and passes them in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import ThumbnailServiceSpec
from thumbnail_operator.builders import (
    app,
    backup,
    buckets,
    config,
    disruption,
    minio,
    monitoring,
    network,
    postgresql,
    redis,
)
from thumbnail_operator.builders.backup import BackupSource
from thumbnail_operator.builders.common import ChildKey, Context, Names, Obj, Owner
from thumbnail_operator.builders.credentials import Rotation


@dataclass(frozen=True)
class DesiredState:
    children: list[Obj]
    config_hash: str
    endpoint: str


def build_desired_state(
    owner: Owner,
    spec: ThumbnailServiceSpec,
    credentials: Mapping[str, str],
    external_secrets: Mapping[str, Mapping[str, str]],
    rotation: Rotation | None = None,
    restore: BackupSource | None = None,
    with_monitoring: bool = False,
    worker_replicas: int | None = None,
) -> DesiredState:
    """Every child of one ThumbnailService, in creation order (data stores before apps).

    `restore`: the backup `spec.bootstrap.fromBackup` names, resolved by the reconciler;
    the API server restores it in an init container and records it in an annotation.
    `with_monitoring`: whether the cluster serves the Prometheus Operator's kinds.
    `worker_replicas`: the autoscaler's size for the workers (None: `workers.replicas`)."""
    ctx = Context(owner=owner, spec=spec)
    environment = config.service_environment(ctx)
    config_hash = config.config_hash(environment, credentials, external_secrets)
    children: list[Obj | None] = [
        config.config_map(ctx),
        # The copy first: it records a rotation with its values, before anything uses them.
        config.credentials_copy_secret(ctx, credentials, rotation),
        config.credentials_secret(ctx, credentials),
    ]
    if spec.postgresql.is_managed:
        children += [
            postgresql.postgresql_service(ctx),
            postgresql.postgresql_stateful_set(ctx, credentials),
        ]
    if spec.redis.is_managed:
        children += [redis.redis_service(ctx), redis.redis_deployment(ctx, credentials)]
    if spec.object_storage.is_managed:
        children += [
            minio.minio_service(ctx),
            minio.minio_console_service(ctx),
            minio.minio_stateful_set(ctx, credentials),
        ]
    children += [
        buckets.bucket_init_job(ctx),
        app.api_service(ctx),
        app.api_node_port_service(ctx),
        server_deployment(ctx, config_hash, restore),
        app.worker_deployment(ctx, config_hash, worker_replicas),
        disruption.server_budget(ctx),
        disruption.worker_budget(ctx),
        *network.network_policies(ctx),
        *(monitoring.monitoring_objects(ctx) if with_monitoring else []),
    ]
    return DesiredState(
        children=[stamp(child) for child in children if child is not None],
        config_hash=config_hash,
        endpoint=api_endpoint(owner, spec),
    )


def api_endpoint(owner: Owner, spec: ThumbnailServiceSpec) -> str:
    """In-cluster URL of the API."""
    return app.api_endpoint(Context(owner=owner, spec=spec))


def server_deployment(ctx: Context, config_hash: str, restore: BackupSource | None) -> Obj:
    if restore is None:
        return app.server_deployment(ctx, config_hash)
    server = app.server_deployment(ctx, config_hash, backup.restore_container(ctx, restore))
    annotations = server["metadata"].setdefault("annotations", {})
    annotations[c.RESTORE_SOURCE_ANNOTATION] = backup.source_annotation(restore)
    return server


def stamp(child: Obj) -> Obj:
    """Record a digest of the desired object on it, so removed fields count as drift too.

    Owner references enter it without their version: they name the owner whichever version
    it is read in, and moving them to a new storage version (issue 6) must not change the
    annotation (a Deployment bumps its generation on any annotation change)."""
    hashed = {**child, "metadata": {**child["metadata"], "ownerReferences": [
        {**ref, "apiVersion": str(ref["apiVersion"]).split("/")[0]}
        for ref in child["metadata"].get("ownerReferences", [])
    ]}}
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]
    annotations = child["metadata"].setdefault("annotations", {})
    annotations[c.APPLIED_HASH_ANNOTATION] = digest
    return child


def external_secret_names(owner: Owner, spec: ThumbnailServiceSpec) -> list[str]:
    """User Secrets the pods read (their content is part of the config hash)."""
    names = set(config.external_secret_names(Context(owner=owner, spec=spec)))
    source = spec.bootstrap.from_backup
    if source is not None and source.destination.s3 is not None:
        names.add(source.destination.s3.secret_ref.name)
    return sorted(names)


__all__ = [
    "ChildKey", "DesiredState", "Names", "Obj", "Owner", "api_endpoint", "build_desired_state",
    "external_secret_names",
]
