"""OpenAPI schema of ThumbnailService v1alpha1 (deprecated; still served).

Every `default` comes from the v1 model's `DEFAULTS` (`api/v1.py`), the one place they are
written; v1 takes most of its subtrees from here, so both versions default alike.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from thumbnail_operator.api.schema.autoscaling import (
    AUTOSCALING,
    AUTOSCALING_STATUS,
    FIXED_WHILE_AUTOSCALED,
)
from thumbnail_operator.api.schema.monitoring import MONITORING
from thumbnail_operator.api.schema.network import NETWORK_POLICY
from thumbnail_operator.api.schema.openapi import (
    DNS_SUBDOMAIN,
    Schema,
    array,
    boolean,
    integer,
    obj,
    resource,
    rule,
    string,
    string_map,
)
from thumbnail_operator.api.schema.renditions import RENDITIONS, WEBHOOKS
from thumbnail_operator.api.schema.scheduling import scheduling
from thumbnail_operator.api.v1 import (
    DEFAULTS,
    FORMATS,
    NOT_CREATED_MESSAGE,
    ExternalPostgres,
    ExternalRedis,
    ExternalS3,
    Image,
    NodePort,
    Resources,
    S3SecretRef,
    SecretKeyRef,
    Storage,
)

QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_D = DEFAULTS

# Regular expressions used in CEL rules (RE2, no backslashes: `[.]` is a literal dot);
# DNS_SUBDOMAIN (Secret and StorageClass names) comes from openapi.py.
# An image repository as container runtimes parse it (the distribution reference grammar):
# an optional registry `host[:port]/`, then lowercase path components; no tag, no digest.
_PATH_PART = "[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
_HOST_PART = "([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
IMAGE_REPOSITORY = f"^({_HOST_PART}([.]{_HOST_PART})*(:[0-9]+)?/)?{_PATH_PART}(/{_PATH_PART})*$"
# 1-65535 as a regular expression (an optional `:port` at the end of an S3 endpoint).
PORT_SUFFIX = (
    ":([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
)

# Smallest accepted sizes (docs/deployment.md, "Validation"):
# a claim below 1Gi holds neither PostgreSQL (its WAL alone may grow to max_wal_size, 1GB by
# default) nor MinIO (which refuses drives smaller than about 900MiB);
MIN_STORAGE = "1Gi"
# a memory limit below 6Mi is refused by Docker and Podman and leaves no room for any process.
MIN_MEMORY_LIMIT = "6Mi"


def _default_of(model: type[BaseModel], field: str) -> Any:
    """The default of a field in a model that has required fields (no DEFAULTS instance)."""
    return model.model_fields[field].default



def _image(what: str, default: Image) -> Schema:
    return obj(
        f"Container image of {what}.",
        {
            "repository": string(
                "Image repository, without the tag: `[registry[:port]/]path`, e.g. `postgres` "
                "or `registry.example.com:5000/team/app`.",
                default=default.repository, min_length=1, max_length=200,
                rules=[rule(f"self.matches('{IMAGE_REPOSITORY}')",
                            "image repository must look like postgres or "
                            "registry.example.com:5000/team/app: an optional registry "
                            "host[:port]/, then lowercase path parts (letters, digits, '.', "
                            "'_', '-'); no spaces, no tag or digest (the tag goes in `tag`)")],
            ),
            "tag": string("Image tag.", default=default.tag,
                          pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=128),
            "pullPolicy": string("When the kubelet pulls the image.",
                                 default=default.pull_policy.value,
                                 enum=["Always", "IfNotPresent", "Never"]),
        },
        default={},
    )


RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")


def _whole_bytes(resource: str) -> dict[str, str]:
    # The API server warns "fractional byte value ... is invalid, must be an integer".
    # isInteger() alone is false for every decimal with a binary suffix (1.5Gi), so the
    # value is also compared with its integer part (exact below 2^52 bytes; beyond, every
    # double is whole; int() would overflow past 9.2e18).
    value = "quantity(self).asApproximateFloat()"
    return rule(f"!isQuantity(self) || quantity(self).isInteger() || {value} >= 9.0e18 || "
                f"double(int({value})) == {value}",
                f"{resource} is a number of bytes and must be whole: 'm' means milli "
                "(512m is half a byte); write Mi or Gi, e.g. 512Mi")


def _quantity_rules(resource: str, limits: bool) -> list[dict[str, str]]:
    rules = [] if resource == "cpu" else [_whole_bytes(resource)]
    if limits and resource == "memory":
        rules.append(rule(
            f"!isQuantity(self) || quantity(self).compareTo(quantity('{MIN_MEMORY_LIMIT}')) >= 0",
            f"a memory limit must be at least {MIN_MEMORY_LIMIT} (no container runs below "
            "it); omit the limit for none"))
    elif limits:
        # A limit of 0 silently means "no limit" to the kubelet.
        rules.append(rule("!isQuantity(self) || quantity(self).compareTo(quantity('0')) > 0",
                          f"a limit of {resource} must be greater than 0; omit it for no limit"))
    return rules


def _quantities(what: str) -> Schema:
    limits = what == "limits"
    return obj(
        f"Resource {what}.",
        {
            resource: string(f"{resource} {what} quantity (Kubernetes notation, e.g. "
                             f"{example}).", pattern=QUANTITY, max_length=32,
                             rules=_quantity_rules(resource, limits))
            for resource, example in zip(RESOURCE_NAMES, ("250m or 2", "512Mi or 1Gi",
                                                          "1Gi"), strict=True)
        },
    )


def _compare(resource: str) -> str:
    field = "." + resource.replace("-", "__dash__")  # how CEL spells `ephemeral-storage`
    return (
        f"!has(self.requests) || !has(self.limits) || !has(self.requests{field}) || "
        f"!has(self.limits{field}) || !isQuantity(self.requests{field}) || "
        f"!isQuantity(self.limits{field}) || "
        f"quantity(self.limits{field}).compareTo(quantity(self.requests{field})) >= 0"
    )


def _resources(what: str, default: Resources) -> Schema:
    return obj(
        f"CPU and memory requests and limits of {what}.",
        {"requests": _quantities("requests"), "limits": _quantities("limits")},
        default=default.as_dict(),
        rules=[
            rule(_compare(resource),
                 f"resources.limits.{resource} must be >= resources.requests.{resource}")
            for resource in RESOURCE_NAMES
        ],
    )


def _node_port(what: str, default: NodePort) -> Schema:
    return obj(
        f"Expose {what} on a port of every node.",
        {
            "enabled": boolean("Create the NodePort Service.", default=default.enabled),
            "port": integer("Node port number.", default=default.port, minimum=1,
                            maximum=65535),
        },
        default={},
        rules=[rule("!self.?enabled.orValue(false) || "
                    "(self.?port.orValue(30000) >= 30000 && self.?port.orValue(30000) <= 32767)",
                    f"{what}: nodePort.port must be within 30000-32767")],
    )


SECRET_NAME_RULE = rule(
    f"self.matches('{DNS_SUBDOMAIN}')",
    "a Secret name is lowercase letters, digits, '-' and '.', and every '.'-separated part "
    "starts and ends with a letter or digit",
)
# What the API server requires of a key in env[].valueFrom.secretKeyRef (IsConfigMapKey).
SECRET_KEY_RULE = rule("self != '.' && !self.startsWith('..')",
                       "a Secret key must not be '.' nor start with '..'")


def _secret_ref(what: str, keys: dict[str, tuple[str, str]]) -> Schema:
    properties: dict[str, Schema] = {
        "name": string(f"Name of the Secret (same namespace) holding {what}.",
                       min_length=1, rules=[SECRET_NAME_RULE]),
    }
    for key, (description, default) in keys.items():
        properties[key] = string(description, default=default, min_length=1,
                                 pattern=r"^[-._a-zA-Z0-9]+$", rules=[SECRET_KEY_RULE])
    return obj(f"Reference to a Secret with {what}.", properties, required=["name"])


def _storage(what: str, default: Storage) -> Schema:
    # Immutable once the StatefulSet exists: see `immutable_once_created` (a root rule, since
    # it reads the status).
    return obj(
        f"Volume for {what} (used when persistence is enabled).",
        {"size": string(
            f"Requested size of the PersistentVolumeClaim, at least {MIN_STORAGE}; immutable "
            "once the StatefulSet exists.",
            default=default.size, pattern=QUANTITY, max_length=32,
            rules=[rule(f"!isQuantity(self) || "
                        f"quantity(self).compareTo(quantity('{MIN_STORAGE}')) >= 0",
                        f"storage size must be at least {MIN_STORAGE}, e.g. 10Gi (a quantity in "
                        "bytes: Mi, Gi or Ti; 'm' would mean milli)")],
        )},
        default={},
    )


def _host(description: str) -> Schema:
    return string(description, min_length=1, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")


def _bucket(description: str, default: str) -> Schema:
    return string(
        description,
        default=default,
        min_length=3,
        max_length=63,
        rules=[
            rule("self.matches('^[a-z0-9][a-z0-9.-]*[a-z0-9]$')",
                 "bucket names use lowercase letters, digits, dots and hyphens, "
                 "and start and end with a letter or digit"),
            rule("!self.contains('..')", "bucket names must not contain two adjacent dots"),
            rule("!self.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$')",
                 "bucket names must not be formatted as an IP address"),
        ],
    )


def _managed_rules(component: str, external: str) -> list[dict[str, str]]:
    return [
        rule("self.?enabled.orValue(true) || has(self.external)",
             f"{component}.external ({external}) is required when {component}.enabled is false"),
        rule("!(self.?enabled.orValue(true) && has(self.external))",
             f"{component}.external must be unset while the managed {component} is enabled"),
    ]


IMAGES = obj(
    "Container images of every component.",
    {
        "server": _image("the API server", _D.server.image),
        "worker": _image("the workers", _D.workers.image),
        "postgresql": _image("the managed PostgreSQL", _D.postgresql.managed.image),
        "redis": _image("the managed Redis", _D.redis.managed.image),
        "minio": _image("the managed MinIO", _D.object_storage.managed.image),
        "minioClient": _image("the bucket-init Job (MinIO client)",
                              _D.object_storage.bucket_init.image),
        "wait": _image("the init containers that wait for dependencies (needs nc)",
                       _D.dependency_wait.image),
        "pullSecrets": array("Names of image pull Secrets for every pod.",
                             string("Secret name.", pattern=DNS_LABEL), max_items=8),
    },
    default={},
)

SERVER = obj(
    "The REST API server.",
    {
        "replicas": integer("Number of API server pods.", default=_D.server.replicas,
                            minimum=0, maximum=100),
        "resources": _resources("an API server pod", _D.server.resources),
        "service": obj(
            "How the API is exposed.",
            {
                "type": string("Type of the main API Service.",
                               default=_D.server.service.type.value,
                               enum=["ClusterIP", "LoadBalancer"]),
                "port": integer("Port of the API Service.", default=_D.server.service.port,
                                minimum=1, maximum=65535),
                "nodePort": _node_port("the API", _D.server.service.node_port),
            },
            default={},
        ),
        "console": obj(
            "The web console at /console on the API (docs/console.md): upload images, watch "
            "jobs, browse thumbnails in a browser with an API key.",
            {"enabled": boolean("Serve the console.", default=_D.server.console.enabled)},
            default={},
        ),
        "scheduling": scheduling("the API server pods", _D.server.scheduling),
    },
    default={},
)

WORKER = obj(
    "The Dramatiq workers that render thumbnails.",
    {
        "replicas": integer("Number of worker pods (also the scale subresource) while "
                            "`autoscaling` is unset.",
                            default=_D.workers.replicas, minimum=0, maximum=1000),
        "autoscaling": AUTOSCALING,
        "concurrency": obj(
            "Parallelism inside one worker pod.",
            {
                "processes": integer("Dramatiq worker processes per pod.",
                                     default=_D.workers.concurrency.processes,
                                     minimum=1, maximum=16),
                "threads": integer("Dramatiq threads per process.",
                                   default=_D.workers.concurrency.threads, minimum=1,
                                   maximum=64),
            },
            default={},
        ),
        "resources": _resources("a worker pod", _D.workers.resources),
        "scheduling": scheduling("the worker pods", _D.workers.scheduling),
    },
    default={},
    rules=[FIXED_WHILE_AUTOSCALED],
)

POSTGRESQL = obj(
    "The job database: a managed PostgreSQL StatefulSet, or an external server.",
    {
        "enabled": boolean("Run PostgreSQL in the cluster; false means use `external`.",
                           default=_D.postgresql.is_managed),
        "database": string(
            "Database name (immutable once the PostgreSQL StatefulSet exists).",
            default=_D.postgresql.database, pattern=r"^[a-z_][a-z0-9_]*$", max_length=63,
            rules=[rule("self != 'template0' && self != 'template1'",
                        "template0 and template1 are PostgreSQL's template databases; "
                        "choose another database name")]),
        "user": string(
            "Database user (immutable once the PostgreSQL StatefulSet exists).",
            default=_D.postgresql.user, pattern=r"^[a-z_][a-z0-9_]*$", max_length=63,
            rules=[rule("!self.startsWith('pg_')",
                        "PostgreSQL reserves role names starting with pg_; choose another user")]),
        "storage": _storage("PostgreSQL data", _D.postgresql.managed.storage),
        "resources": _resources("the PostgreSQL pod", _D.postgresql.managed.resources),
        "scheduling": scheduling("the managed PostgreSQL pod",
                                 _D.postgresql.managed.scheduling),
        "external": obj(
            "Connection to an external PostgreSQL (when enabled is false).",
            {
                "host": _host("Host name or IP address of the server."),
                "port": integer("Server port.", default=_default_of(ExternalPostgres, "port"),
                                minimum=1, maximum=65535),
                "secretRef": _secret_ref("the database password",
                                         {"key": ("Key of the password.",
                                                  _default_of(SecretKeyRef, "key"))}),
            },
            required=["host", "secretRef"],
        ),
    },
    default={},
    rules=_managed_rules("postgresql", "host and secretRef"),
)

REDIS = obj(
    "The Dramatiq broker: a managed Redis Deployment, or an external server.",
    {
        "enabled": boolean("Run Redis in the cluster; false means use `external`.",
                           default=_D.redis.is_managed),
        "database": integer("Redis database number.", default=_D.redis.database, minimum=0,
                            maximum=15),
        "resources": _resources("the Redis pod", _D.redis.managed.resources),
        "scheduling": scheduling("the managed Redis pod", _D.redis.managed.scheduling),
        "external": obj(
            "Connection to an external Redis (when enabled is false).",
            {
                "host": _host("Host name or IP address of the server."),
                "port": integer("Server port.", default=_default_of(ExternalRedis, "port"),
                                minimum=1, maximum=65535),
                "secretRef": _secret_ref("the Redis password (optional)",
                                         {"key": ("Key of the password.",
                                                  _default_of(SecretKeyRef, "key"))}),
            },
            required=["host"],
        ),
    },
    default={},
    rules=_managed_rules("redis", "host"),
)

MINIO = obj(
    "Object storage: a managed MinIO StatefulSet, or any external S3 endpoint.",
    {
        "enabled": boolean("Run MinIO in the cluster; false means use `external`.",
                           default=_D.object_storage.is_managed),
        "storage": _storage("MinIO objects", _D.object_storage.managed.storage),
        "resources": _resources("the MinIO pod", _D.object_storage.managed.resources),
        "scheduling": scheduling("the managed MinIO pod",
                                 _D.object_storage.managed.scheduling),
        "console": obj(
            "The MinIO web console (port 9001).",
            {"nodePort": _node_port("the MinIO console",
                                    _D.object_storage.managed.console.node_port)},
            default={},
        ),
        "buckets": obj(
            "Buckets the bucket-init Job creates (idempotently).",
            {
                "originals": _bucket("Bucket for uploaded originals.",
                                     _D.object_storage.buckets.originals),
                "thumbnails": _bucket("Bucket for generated thumbnails.",
                                      _D.object_storage.buckets.thumbnails),
            },
            default={},
            rules=[rule("!has(self.originals) || !has(self.thumbnails) || "
                        "self.originals != self.thumbnails",
                        "buckets.originals and buckets.thumbnails must be different buckets")],
        ),
        "external": obj(
            "An external S3-compatible endpoint (when enabled is false).",
            {
                "endpoint": string(
                    "host:port of the S3 API, without scheme.", min_length=1,
                    pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?$",
                    rules=[rule(f"!self.matches(':[0-9]+$') || self.matches('{PORT_SUFFIX}')",
                                "the port of the S3 endpoint must be within 1-65535")]),
                "secure": boolean("Use HTTPS.", default=_default_of(ExternalS3, "secure")),
                "region": string("S3 region.", default=_default_of(ExternalS3, "region"),
                                 max_length=64),
                "secretRef": _secret_ref("the S3 credentials", {
                    "accessKeyKey": ("Key of the access key.",
                                     _default_of(S3SecretRef, "access_key_key")),
                    "secretKeyKey": ("Key of the secret key.",
                                     _default_of(S3SecretRef, "secret_key_key")),
                }),
            },
            required=["endpoint", "secretRef"],
        ),
    },
    default={},
    rules=_managed_rules("minio", "endpoint and secretRef"),
)

# A backup id (and ThumbnailBackup name): a DNS label, so it is a safe object key segment.
BACKUP_ID = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# Five cron fields of digits, `*`, `,`, `-`, `/` (controller/cron.py parses them; an
# expression that passes this but still cannot be parsed is reported in the conditions).
CRON = r"^\s*([0-9*,/-]+\s+){4}[0-9*,/-]+\s*$"


def backup_destination(what: str, *, defaulted: bool = True) -> Schema:
    """`defaulted`: {} when unset (false where unset means "another one's destination")."""
    return obj(
        f"Where {what}: <bucket>/<prefix>/<backup id>/ on the service's own object storage, "
        "or on the S3 endpoint under `s3`.",
        {
            "bucket": _bucket("Bucket of the backups (created if missing).",
                              _D.backup.destination.bucket),
            "prefix": string(
                "Key prefix; empty means <namespace>/<name> of this ThumbnailService.",
                default=_D.backup.destination.prefix, max_length=512,
                pattern=r"^([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$"),
            "s3": {**copy.deepcopy(MINIO["properties"]["external"]), "description":
                   "Another S3 endpoint (recommended: backups that outlive this service's "
                   "volumes); unset means the service's own object storage."},
        },
        default={} if defaulted else None,
    )


BACKUP = obj(
    "Scheduled backups (ThumbnailBackup resources the operator creates on `schedule`).",
    {
        "schedule": string("Five-field cron schedule in UTC (e.g. \"0 3 * * *\"); unset: "
                           "no scheduled backups.", pattern=CRON, max_length=128),
        "destination": backup_destination("backups are written"),
        "retention": obj(
            "Scheduled backups to keep; on-demand ones are never pruned. 0 turns a limit off.",
            {
                "count": integer("Newest scheduled backups to keep.",
                                 default=_D.backup.retention.count, minimum=0, maximum=10000),
                "maxAgeDays": integer("Delete scheduled backups older than this.",
                                      default=_D.backup.retention.max_age_days, minimum=0,
                                      maximum=36500),
            },
            default={},
        ),
    },
    default={},
)

BOOTSTRAP = obj(
    "How a new ThumbnailService starts (a restore runs once: later changes do not restore "
    "again, and a different backup is refused once the database holds jobs).",
    {
        "fromBackup": obj(
            "Restore PostgreSQL and the buckets from a backup before the API serves "
            "(refused if the database already holds jobs).",
            {
                "backupName": string("A ThumbnailBackup of this namespace.",
                                     pattern=BACKUP_ID, max_length=63),
                "backupId": string("A backup id under `destination` (another namespace or "
                                   "cluster).", pattern=BACKUP_ID, max_length=63),
                "destination": backup_destination("the backup is read from"),
            },
            rules=[rule("has(self.backupName) != has(self.backupId)",
                        "fromBackup needs exactly one of backupName and backupId")],
        ),
    },
    default={},
)

PERSISTENCE = obj(
    "Volumes of the managed PostgreSQL and MinIO.",
    {
        "enabled": boolean("Use PersistentVolumeClaims; false means emptyDir (data is lost "
                           "when a pod goes away). Immutable once a StatefulSet exists.",
                           default=_D.persistence.enabled),
        "storageClassName": string(
            "StorageClass of the claims; unset means the cluster default, \"\" no class "
            "(pre-provisioned volumes only). Immutable once a StatefulSet exists.",
            max_length=253,
            rules=[rule(f"self == '' || self.matches('{DNS_SUBDOMAIN}')",
                        "a StorageClass name is lowercase letters, digits, '-' and '.', and "
                        "every '.'-separated part starts and ends with a letter or digit")]),
        "retentionPolicy": string(
            "What happens to the claims when the ThumbnailService is deleted: Retain keeps "
            "them (re-creating the resource with the same name reuses the data), Delete "
            "removes them with it.",
            default=_D.persistence.retention_policy.value,
            enum=["Retain", "Delete"],
        ),
    },
    default={},
)

_PRESET = obj(
    "A named thumbnail size (the image fits inside width x height).",
    {
        "width": integer("Maximum width in pixels.", minimum=1, maximum=8192),
        "height": integer("Maximum height in pixels.", minimum=1, maximum=8192),
    },
    required=["width", "height"],
)

THUMBNAILS = obj(
    "Settings passed to the thumbnail service.",
    {
        "presets": {
            **string_map(
                "Named thumbnail sizes (THUMBNAIL_PRESETS).",
                _PRESET,
                max_properties=32,
                default={p.name: {"width": p.width, "height": p.height}
                         for p in _D.thumbnails.presets},
            ),
            "minProperties": 1,
            "x-kubernetes-validations": [
                rule("self.all(k, k.matches('^[a-z0-9]([-_a-z0-9]{0,30}[a-z0-9])?$'))",
                     "preset names are 1-32 lowercase letters, digits, '-' or '_'"),
            ],
        },
        "limits": obj(
            "Request and processing limits.",
            {
                "maxUploadBytes": integer("Largest accepted upload in bytes (413 above).",
                                          default=_D.thumbnails.limits.max_upload_bytes,
                                          minimum=1, maximum=2**32),
                "maxPixels": integer("Largest decoded image in pixels (422 above).",
                                     default=_D.thumbnails.limits.max_pixels, minimum=1,
                                     maximum=2**32),
                "jobTimeoutSeconds": integer("Processing limit per job in seconds.",
                                             default=_D.thumbnails.limits.job_timeout_seconds,
                                             minimum=1, maximum=3600),
                "rateLimitPerMinute": integer("Requests per minute per API key (0: none).",
                                              default=_D.thumbnails.limits.rate_limit_per_minute,
                                              minimum=0, maximum=1_000_000),
                "tenantQuotaBytes": integer("Bytes stored per tenant (0: none).",
                                            default=_D.thumbnails.limits.tenant_quota_bytes,
                                            minimum=0, maximum=2**50),
            },
            default={},
        ),
        "allowedFormats": {
            **array("Accepted input formats.", string("Image format.", enum=list(FORMATS)),
                    max_items=len(FORMATS), default=list(_D.thumbnails.allowed_formats),
                    list_type="set"),
            "minItems": 1,
        },
        "authEnabled": boolean("Require an API key (X-API-Key) on /v1 requests; the keys are "
                               "in the generated credentials Secret.",
                               default=_D.thumbnails.auth_enabled),
        "logLevel": string("Log level of server and workers.",
                           default=_D.thumbnails.log_level.value,
                           enum=["DEBUG", "INFO", "WARNING", "ERROR"]),
        "renditions": RENDITIONS,
        "webhooks": WEBHOOKS,
    },
    default={},
)

SPEC = obj(
    "Desired state of a thumbnail service deployment (mirrors the original Helm values).",
    {
        "images": IMAGES,
        "server": SERVER,
        "worker": WORKER,
        "postgresql": POSTGRESQL,
        "redis": REDIS,
        "minio": MINIO,
        "persistence": PERSISTENCE,
        "thumbnails": THUMBNAILS,
        "deletionProtection": boolean(
            "Refuse `kubectl delete` of this resource (a ValidatingAdmissionPolicy shipped with "
            "the CRD) until this is set back to false.",
            default=_D.deletion_protection),
        "backup": BACKUP,
        "bootstrap": BOOTSTRAP,
        "networkPolicy": NETWORK_POLICY,
        "monitoring": MONITORING,
    },
    default={},
    rules=[
        rule("!(self.?server.?service.?nodePort.?enabled.orValue(false) && "
             "self.?minio.?console.?nodePort.?enabled.orValue(false) && "
             "self.?server.?service.?nodePort.?port.orValue(30000) == "
             "self.?minio.?console.?nodePort.?port.orValue(30001))",
             "the API and MinIO console node ports must differ"),
        rule("self.?minio.?enabled.orValue(true) || "
             "!self.?minio.?console.?nodePort.?enabled.orValue(false)",
             "minio.console.nodePort needs the managed MinIO (minio.enabled)"),
    ],
)


def _component_status(what: str, *, with_selector: bool = False) -> Schema:
    properties: dict[str, Schema] = {
        "ready": boolean(f"Whether {what} is ready."),
        "replicas": integer("Desired pods (or 1 for a Job).", minimum=0),
        "readyReplicas": integer("Pods reporting ready (or 1 once a Job succeeded).", minimum=0),
        "message": string("Human-readable state.", max_length=1024),
    }
    if with_selector:
        properties["selector"] = string("Label selector of the pods (scale subresource).",
                                        max_length=1024)
    return obj(f"Observed state of {what}.", properties)


CONDITION = obj(
    "A metav1.Condition.",
    {
        "type": string("Condition type (Ready, Progressing, Degraded).", max_length=316),
        "status": string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
        "reason": string("CamelCase reason.", max_length=1024),
        "message": string("Human-readable details.", max_length=32768),
        "observedGeneration": integer("Generation the condition was computed from.",
                                      minimum=0, maximum=2**62),
        "lastTransitionTime": {"type": "string", "format": "date-time",
                               "description": "When status last changed."},
    },
    required=["type", "status", "lastTransitionTime", "reason", "message"],
)

STATUS = obj(
    "Observed state, computed from what the cluster reports.",
    {
        "observedGeneration": integer("Generation of the spec last reconciled.", minimum=0,
                                      maximum=2**62),
        "conditions": {
            **array("Standard conditions: Ready, Progressing, Degraded.", CONDITION,
                    max_items=16, list_type="map"),
            "x-kubernetes-list-map-keys": ["type"],
        },
        "endpoint": string("In-cluster URL of the API.", max_length=512),
        "nodePortEndpoint": string("Node port of the API, as node-ip:port hint.", max_length=512),
        "configHash": string("Hash of the configuration the server and workers run with.",
                             max_length=64),
        "serverReplicas": string("Ready/desired API server pods.", max_length=32),
        "workerReplicas": string("Ready/desired worker pods.", max_length=32),
        "components": obj(
            "Readiness per component.",
            {
                "server": _component_status("the API server"),
                "workers": _component_status("the workers", with_selector=True),
                "postgresql": _component_status("PostgreSQL"),
                "redis": _component_status("Redis"),
                "minio": _component_status("MinIO"),
                "buckets": _component_status("the bucket-init Job"),
            },
        ),
        "credentials": obj(
            "The last rotation of the generated credentials "
            "(annotation thumbnails.platform.dev/rotate-credentials).",
            {
                "rotation": string("The annotation value that rotation handled.",
                                   max_length=253),
                "rotatedAt": {"type": "string", "format": "date-time",
                              "description": "When the new credentials were issued."},
            },
        ),
        "lastBackup": obj(
            "The newest ThumbnailBackup of this service that completed (the operator records "
            "it when that backup completes).",
            {
                "name": string("The ThumbnailBackup (also the backup's id).", max_length=63),
                "completedAt": {"type": "string", "format": "date-time",
                                "description": "When it completed."},
                "jobs": integer("Thumbnail jobs in it.", minimum=0, maximum=2**62),
                "size": string("Bytes of its objects, for people.", max_length=32),
            },
        ),
        "autoscaling": AUTOSCALING_STATUS,
        "processing": obj(
            "Whether jobs are being processed, as the running API reports it (asked every "
            "--processing-probe-seconds while an API server is ready).",
            {
                "liveWorkers": integer(
                    "Worker processes whose heartbeat is fresh; absent when unknown.",
                    minimum=0, maximum=1_000_000),
                "oldestQueuedJobSince": {
                    "type": "string", "format": "date-time",
                    "description": "When the oldest job still waiting was submitted; absent "
                    "when no job waits. Growing old while liveWorkers is 0: nothing processes.",
                },
                "queuedJobs": integer("Jobs waiting to be processed (the backlog).",
                                      minimum=0, maximum=2**62),
                "jobsPerMinute": {
                    "type": "number", "minimum": 0,
                    "description": "Jobs finished per minute over the last five minutes.",
                },
                "message": string("What the API reported, or why nothing was observed.",
                                  max_length=1024),
            },
        ),
    },
)

NAME_RULES = [
    rule("size(self.metadata.name) <= 40",
         "metadata.name must be at most 40 characters (children append suffixes)"),
    rule("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
         "metadata.name must start with a letter and contain only lowercase letters, digits "
         "and '-' (it names Services)"),
]


@dataclass(frozen=True)
class StatefulSetInputs:
    """Where one API version keeps the spec fields that end up in an immutable part of a
    StatefulSet (claim templates) or in data initialised once, and the status of the
    component each one feeds: dotted paths from the object's root."""

    postgresql_status: str
    object_storage_status: str
    postgresql_storage_size: str
    object_storage_storage_size: str
    database: str
    user: str
    persistence_enabled: str
    storage_class_name: str


STATEFUL_SET_INPUTS = StatefulSetInputs(
    postgresql_status="status.components.postgresql",
    object_storage_status="status.components.minio",
    postgresql_storage_size="spec.postgresql.storage.size",
    object_storage_storage_size="spec.minio.storage.size",
    database="spec.postgresql.database",
    user="spec.postgresql.user",
    persistence_enabled="spec.persistence.enabled",
    storage_class_name="spec.persistence.storageClassName",
)


def _optional(root: str, dotted: str) -> str:
    return root + "".join(f".?{part}" for part in dotted.split("."))


def _not_created(status: str) -> str:
    """The component's workload does not exist: the reconciler says so in the status (no
    status at all: never reconciled, so nothing was created either)."""
    message = _optional("oldSelf", f"{status}.message")
    return f"{message}.orValue('{NOT_CREATED_MESSAGE}') == '{NOT_CREATED_MESSAGE}'"


def _immutable(field: str, statuses: list[str], message: str) -> dict[str, str]:
    # The field's parents always exist (objects default to {}). Plain field access, not
    # optionals: the API server estimates the cost of comparing two optional strings as
    # unbounded and refuses the CRD.
    new, old = f"self.{field}", f"oldSelf.{field}"
    unchanged = f"(has({new}) == has({old}) && (!has({new}) || {new} == {old}))"
    while_missing = " && ".join(_not_created(status) for status in statuses)
    notice = " and ".join(f"{status}.message" for status in statuses)
    return rule(f"{unchanged} || ({while_missing})",
                f"{message}; it may change only while {notice} is '{NOT_CREATED_MESSAGE}'",
                fieldPath=f".{field}")


def immutable_once_created(paths: StatefulSetInputs) -> list[dict[str, str]]:
    """Transition rules on the root (they read the status next to the spec): a field that
    feeds an immutable part of a StatefulSet may change while that StatefulSet does not exist
    (never created, e.g. because the API server refused it), and only then."""
    pg, minio = paths.postgresql_status, paths.object_storage_status
    claims = "(StatefulSet volumeClaimTemplates cannot change; to grow a volume, expand its " \
             "PersistentVolumeClaim)"
    return [
        _immutable(paths.postgresql_storage_size, [pg],
                   f"storage size is immutable once the PostgreSQL StatefulSet exists {claims}"),
        _immutable(paths.object_storage_storage_size, [minio],
                   f"storage size is immutable once the MinIO StatefulSet exists {claims}"),
        _immutable(paths.database, [pg],
                   "postgresql.database is immutable once the PostgreSQL StatefulSet exists "
                   "(the database is initialised once)"),
        _immutable(paths.user, [pg],
                   "postgresql.user is immutable once the PostgreSQL StatefulSet exists "
                   "(the database is initialised once)"),
        _immutable(paths.persistence_enabled, [pg, minio],
                   "persistence.enabled is immutable once a PostgreSQL or MinIO StatefulSet "
                   f"exists {claims}"),
        _immutable(paths.storage_class_name, [pg, minio],
                   "persistence.storageClassName is immutable once a PostgreSQL or MinIO "
                   f"StatefulSet exists {claims}"),
    ]


def version_schema() -> dict[str, Any]:
    return {
        **resource("ThumbnailService runs the thumbnail API, its workers and their "
                   "PostgreSQL, Redis and MinIO.",
                   {"type": "string", "maxLength": 40}, SPEC, STATUS),
        "x-kubernetes-validations": [*NAME_RULES, *immutable_once_created(STATEFUL_SET_INPUTS)],
    }


def printer_columns(endpoint: str) -> list[dict[str, Any]]:
    """`kubectl get` columns; only where the endpoint lives differs between the versions."""
    return [
        {"name": "Ready", "type": "string",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
         "description": "Whether every component is ready."},
        {"name": "Server", "type": "string", "jsonPath": ".status.serverReplicas",
         "description": "Ready/desired API server pods."},
        {"name": "Workers", "type": "string", "jsonPath": ".status.workerReplicas",
         "description": "Ready/desired worker pods."},
        {"name": "Live", "type": "integer", "jsonPath": ".status.processing.liveWorkers",
         "description": "Worker processes alive (heartbeats), as the API reports."},
        {"name": "Oldest Queued", "type": "date",
         "jsonPath": ".status.processing.oldestQueuedJobSince",
         "description": "How long the oldest waiting job has waited (empty: none waits)."},
        {"name": "Backlog", "type": "integer", "jsonPath": ".status.processing.queuedJobs",
         "priority": 1, "description": "Jobs waiting to be processed, as the API reports."},
        {"name": "Jobs/min", "type": "number", "jsonPath": ".status.processing.jobsPerMinute",
         "priority": 1, "description": "Jobs finished per minute over the last five minutes."},
        {"name": "Last Backup", "type": "date", "jsonPath": ".status.lastBackup.completedAt",
         "description": "When the newest completed ThumbnailBackup of this service finished."},
        {"name": "Endpoint", "type": "string", "jsonPath": endpoint,
         "description": "In-cluster URL of the API."},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
