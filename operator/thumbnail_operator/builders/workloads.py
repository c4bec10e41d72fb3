"""Shared shapes of the data-store children: pod specs, StatefulSets, Services."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import Scheduling, Storage
from thumbnail_operator.builders.common import (
    Context,
    Obj,
    pod_security,
    pull_secrets,
)
from thumbnail_operator.builders.credentials import digest
from thumbnail_operator.builders.scheduling import placement

DATA_UID = 999  # the postgres and redis users of the official images
MINIO_UID = 1000


def secret_env(ctx: Context, env: str, key: str) -> Obj:
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": ctx.names.credentials, "key": key}}}


def credentials_template_metadata(
    ctx: Context, component: str, credentials: Mapping[str, str], keys: Collection[str]
) -> Obj:
    """Pod template metadata of a data store: rolls it when one of its credentials changes
    (the images apply the credentials from the environment at every start)."""
    return {
        "labels": ctx.labels(component),
        "annotations": {c.CREDENTIALS_HASH_ANNOTATION: digest(credentials, keys)},
    }


def pod_spec(
    ctx: Context, uid: int, containers: list[Obj], volumes: list[Obj], *, component: str = "",
    scheduling: Scheduling | None = None,
) -> Obj:
    """A data store's pod (or the bucket-init Job's, which has no `scheduling`)."""
    spec: Obj = {
        "securityContext": pod_security(uid),
        "containers": containers,
        "volumes": volumes,
        "enableServiceLinks": False,
    }
    if scheduling is not None:
        spec.update(placement(ctx, component, scheduling))
    if ctx.spec.image_pull_secrets:
        spec["imagePullSecrets"] = pull_secrets(ctx.spec)
    return spec


def stateful_set(
    ctx: Context, *, name: str, component: str, service: str, pod: Obj, storage: Storage,
    template_metadata: Obj,
) -> Obj:
    """One-replica StatefulSet whose `data` volume is a claim when persistence is on."""
    persistence = ctx.spec.persistence
    spec: Obj = {
        "replicas": 1,
        "serviceName": service,
        "selector": {"matchLabels": ctx.selector(component)},
        "template": {"metadata": template_metadata, "spec": pod},
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


def service(ctx: Context, name: str, component: str, ports: list[Obj], **spec: object) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(name, component),
        "spec": {"selector": ctx.selector(component), "ports": ports, **spec},
    }


def service_port(name: str, port: int, node_port: int | None = None) -> Obj:
    body: Obj = {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
    if node_port is not None:
        body["nodePort"] = node_port
    return body


