"""OpenAPI schema of ThumbnailService v1, the storage version.

What v1alpha1 taught, applied:
- every component is one group that carries its own image (`server.image`,
  `workers.image`, `postgresql.managed.image`, ...) instead of a separate `images` map;
- PostgreSQL, Redis and object storage say "managed or external" the same way:
  `mode: Managed|External`, settings of the in-cluster server under `managed`, the
  connection to an outside server under `external` (required exactly when mode is External);
- object storage is named for what it is (`objectStorage`), MinIO being the managed choice;
- presets are a list of named sizes (`listType: map` keyed by `name`), so their order is kept;
- image pull Secrets use the Kubernetes `LocalObjectReference` shape (`[{name: ...}]`).

Subtrees whose shape did not change are taken verbatim from the v1alpha1 schema, so the
two versions cannot drift apart on bounds, defaults or CEL rules (a unit test checks that
every subtree the conversion copies unchanged has the same schema in both versions).
"""

from __future__ import annotations

import copy
from typing import Any

from thumbnail_operator.api.schema import v1alpha1
from thumbnail_operator.api.schema.openapi import Schema, array, integer, obj, rule, string
from thumbnail_operator.api.v1 import DEFAULTS, Mode

MANAGED = Mode.MANAGED.value
EXTERNAL = Mode.EXTERNAL.value

# The CEL-free preset-name rule of v1alpha1 (map keys) becomes a pattern on the item name.
PRESET_NAME = r"^[a-z0-9]([-_a-z0-9]{0,30}[a-z0-9])?$"
DEFAULT_PRESETS = [preset.model_dump() for preset in DEFAULTS.thumbnails.presets]


def _alpha(*path: str) -> Schema:
    """A deep copy of the v1alpha1 spec schema at `path` (property names)."""
    node: Schema = v1alpha1.SPEC
    for key in path:
        node = node["properties"][key]
    return copy.deepcopy(node)


def _alpha_status(*path: str) -> Schema:
    node: Schema = v1alpha1.STATUS
    for key in path:
        node = node["properties"][key]
    return copy.deepcopy(node)


def _mode(component: str) -> Schema:
    return string(
        f"Run {component} in the cluster (Managed) or connect to an existing server "
        "(External, configured under `external`).",
        default=MANAGED,
        enum=[MANAGED, EXTERNAL],
    )


def _mode_rules(component: str, external: str) -> list[dict[str, str]]:
    # Optional chaining: the API server checks rules against `default: {}` too, before the
    # nested defaults exist (mode defaults to Managed).
    managed = f"self.?mode.orValue('{MANAGED}') == '{MANAGED}'"
    return [
        rule(f"{managed} || has(self.external)",
             f"{component}.external ({external}) is required when {component}.mode is External"),
        rule(f"!({managed} && has(self.external))",
             f"{component}.external must be unset while {component}.mode is Managed"),
    ]


SERVER = obj(
    "The REST API server.",
    {
        "image": _alpha("images", "server"),
        "replicas": _alpha("server", "replicas"),
        "resources": _alpha("server", "resources"),
        "service": _alpha("server", "service"),
        "console": _alpha("server", "console"),
        "scheduling": _alpha("server", "scheduling"),
    },
    default={},
)

WORKERS = obj(
    "The Dramatiq workers that render thumbnails.",
    {
        "image": _alpha("images", "worker"),
        "replicas": _alpha("worker", "replicas"),
        "autoscaling": _alpha("worker", "autoscaling"),
        "concurrency": _alpha("worker", "concurrency"),
        "resources": _alpha("worker", "resources"),
        "scheduling": _alpha("worker", "scheduling"),
    },
    default={},
    rules=copy.deepcopy(_alpha("worker")["x-kubernetes-validations"]),
)

POSTGRESQL = obj(
    "The job database: a managed PostgreSQL StatefulSet, or an external server.",
    {
        "mode": _mode("PostgreSQL"),
        "database": _alpha("postgresql", "database"),
        "user": _alpha("postgresql", "user"),
        "managed": obj(
            "The in-cluster PostgreSQL (used when mode is Managed; kept otherwise so that "
            "switching back restores it).",
            {
                "image": _alpha("images", "postgresql"),
                "storage": _alpha("postgresql", "storage"),
                "resources": _alpha("postgresql", "resources"),
                "scheduling": _alpha("postgresql", "scheduling"),
            },
            default={},
        ),
        "external": _alpha("postgresql", "external"),
    },
    default={},
    rules=_mode_rules("postgresql", "host and secretRef"),
)

REDIS = obj(
    "The Dramatiq broker: a managed Redis Deployment, or an external server.",
    {
        "mode": _mode("Redis"),
        "database": _alpha("redis", "database"),
        "managed": obj(
            "The in-cluster Redis (used when mode is Managed).",
            {
                "image": _alpha("images", "redis"),
                "resources": _alpha("redis", "resources"),
                "scheduling": _alpha("redis", "scheduling"),
            },
            default={},
        ),
        "external": _alpha("redis", "external"),
    },
    default={},
    rules=_mode_rules("redis", "host"),
)

OBJECT_STORAGE = obj(
    "Object storage: a managed MinIO StatefulSet, or any external S3 endpoint.",
    {
        "mode": _mode("object storage (MinIO)"),
        "buckets": _alpha("minio", "buckets"),
        "managed": obj(
            "The in-cluster MinIO (used when mode is Managed).",
            {
                "image": _alpha("images", "minio"),
                "storage": _alpha("minio", "storage"),
                "resources": _alpha("minio", "resources"),
                "console": _alpha("minio", "console"),
                "scheduling": _alpha("minio", "scheduling"),
            },
            default={},
        ),
        "external": _alpha("minio", "external"),
        "bucketInit": obj(
            "The Job that creates the buckets (idempotently), in either mode.",
            {"image": _alpha("images", "minioClient")},
            default={},
        ),
    },
    default={},
    rules=_mode_rules("objectStorage", "endpoint and secretRef"),
)

DEPENDENCY_WAIT = obj(
    "The init containers that hold server and worker pods until PostgreSQL, Redis and "
    "object storage answer.",
    {"image": _alpha("images", "wait")},
    default={},
)

IMAGE_PULL_SECRETS = array(
    "Image pull Secrets for every pod (same shape as a pod's imagePullSecrets).",
    obj(
        "Reference to a Secret in the same namespace.",
        {"name": copy.deepcopy(_alpha("images", "pullSecrets")["items"])},
        required=["name"],
    ),
    max_items=_alpha("images", "pullSecrets")["maxItems"],
)

_PRESET_ITEM = obj(
    "A named thumbnail size (the image fits inside width x height).",
    {
        "name": string("Preset name, used in URLs and job results.", pattern=PRESET_NAME,
                       min_length=1, max_length=32),
        "width": integer("Maximum width in pixels.", minimum=1, maximum=8192),
        "height": integer("Maximum height in pixels.", minimum=1, maximum=8192),
    },
    required=["name", "width", "height"],
)

_alpha_thumbnails = _alpha("thumbnails")
THUMBNAILS = obj(
    _alpha_thumbnails["description"],
    {
        "presets": {
            **array(
                "Named thumbnail sizes (THUMBNAIL_PRESETS), in the order clients list them.",
                _PRESET_ITEM,
                max_items=_alpha("thumbnails", "presets")["maxProperties"],
                default=copy.deepcopy(DEFAULT_PRESETS),
                list_type="map",
            ),
            "x-kubernetes-list-map-keys": ["name"],
            "minItems": 1,
        },
        "limits": _alpha("thumbnails", "limits"),
        "allowedFormats": _alpha("thumbnails", "allowedFormats"),
        "authEnabled": _alpha("thumbnails", "authEnabled"),
        "logLevel": _alpha("thumbnails", "logLevel"),
        "renditions": _alpha("thumbnails", "renditions"),
        "webhooks": _alpha("thumbnails", "webhooks"),
    },
    default={},
)

SPEC = obj(
    "Desired state of a thumbnail service deployment.",
    {
        "server": SERVER,
        "workers": WORKERS,
        "postgresql": POSTGRESQL,
        "redis": REDIS,
        "objectStorage": OBJECT_STORAGE,
        "persistence": _alpha("persistence"),
        "thumbnails": THUMBNAILS,
        "dependencyWait": DEPENDENCY_WAIT,
        "imagePullSecrets": IMAGE_PULL_SECRETS,
        "deletionProtection": _alpha("deletionProtection"),
        "backup": _alpha("backup"),
        "bootstrap": _alpha("bootstrap"),
        "networkPolicy": _alpha("networkPolicy"),
        "monitoring": _alpha("monitoring"),
    },
    default={},
    rules=[
        rule("!(self.?server.?service.?nodePort.?enabled.orValue(false) && "
             "self.?objectStorage.?managed.?console.?nodePort.?enabled.orValue(false) && "
             "self.?server.?service.?nodePort.?port.orValue(30000) == "
             "self.?objectStorage.?managed.?console.?nodePort.?port.orValue(30001))",
             "the API and MinIO console node ports must differ"),
        rule(f"self.?objectStorage.?mode.orValue('{MANAGED}') == '{MANAGED}' || "
             "!self.?objectStorage.?managed.?console.?nodePort.?enabled.orValue(false)",
             "objectStorage.managed.console.nodePort needs objectStorage.mode Managed"),
    ],
)

STATUS = obj(
    "Observed state, computed from what the cluster reports.",
    {
        "observedGeneration": _alpha_status("observedGeneration"),
        "conditions": _alpha_status("conditions"),
        "endpoints": obj(
            "Where the API answers.",
            {
                "cluster": _alpha_status("endpoint"),
                "nodePort": _alpha_status("nodePortEndpoint"),
            },
        ),
        "configHash": _alpha_status("configHash"),
        "serverReplicas": _alpha_status("serverReplicas"),
        "workerReplicas": _alpha_status("workerReplicas"),
        "components": obj(
            "Readiness per component.",
            {
                "server": _alpha_status("components", "server"),
                "workers": _alpha_status("components", "workers"),
                "postgresql": _alpha_status("components", "postgresql"),
                "redis": _alpha_status("components", "redis"),
                "objectStorage": _alpha_status("components", "minio"),
                "buckets": _alpha_status("components", "buckets"),
            },
        ),
        "credentials": _alpha_status("credentials"),
        "autoscaling": _alpha_status("autoscaling"),
        "processing": _alpha_status("processing"),
        "lastBackup": _alpha_status("lastBackup"),
    },
)

# The same rules as v1alpha1's, on the fields where v1 keeps them (a unit test checks that
# these are the v1alpha1 paths moved by the conversion table).
STATEFUL_SET_INPUTS = v1alpha1.StatefulSetInputs(
    postgresql_status="status.components.postgresql",
    object_storage_status="status.components.objectStorage",
    postgresql_storage_size="spec.postgresql.managed.storage.size",
    object_storage_storage_size="spec.objectStorage.managed.storage.size",
    database="spec.postgresql.database",
    user="spec.postgresql.user",
    persistence_enabled="spec.persistence.enabled",
    storage_class_name="spec.persistence.storageClassName",
)

PRINTER_COLUMNS = v1alpha1.printer_columns(".status.endpoints.cluster")

SCALE = {
    "specReplicasPath": ".spec.workers.replicas",
    "statusReplicasPath": ".status.components.workers.replicas",
    "labelSelectorPath": ".status.components.workers.selector",
}


def version_schema() -> dict[str, Any]:
    alpha = v1alpha1.version_schema()
    return {
        "type": "object",
        "description": alpha["description"],
        "properties": {
            "apiVersion": alpha["properties"]["apiVersion"],
            "kind": alpha["properties"]["kind"],
            "metadata": alpha["properties"]["metadata"],
            "spec": copy.deepcopy(SPEC),
            "status": copy.deepcopy(STATUS),
        },
        "x-kubernetes-validations": [
            *copy.deepcopy(v1alpha1.NAME_RULES),
            *v1alpha1.immutable_once_created(STATEFUL_SET_INPUTS),
        ],
    }


def v1_version() -> dict[str, Any]:
    """The `versions[]` entry of v1: served, the storage version."""
    return {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": version_schema()},
        "subresources": {"status": {}, "scale": dict(SCALE)},
        "additionalPrinterColumns": copy.deepcopy(PRINTER_COLUMNS),
    }
