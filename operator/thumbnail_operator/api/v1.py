"""Typed model of a ThumbnailService v1 spec: the hub every other part of the operator reads.

This is the one place the spec defaults are written. The OpenAPI schemas of both versions
take their `default`s from `DEFAULTS` (so the CRD the API server defaults with cannot drift
from what the builders assume), and the builders stay total on partial input (unit tests,
objects stored before a default was added). Validation is the CRD's job, not this module's.
"""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class Mode(StrEnum):
    """Run a dependency in the cluster, or connect to one the user runs."""

    MANAGED = "Managed"
    EXTERNAL = "External"


class RetentionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    LOAD_BALANCER = "LoadBalancer"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Image(_Model):
    repository: str
    tag: str = "latest"
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


def _image(repository: str, tag: str = "latest") -> Any:
    return Field(default_factory=lambda: Image(repository=repository, tag=tag))


class Resources(_Model):
    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {k: dict(v) for k, v in (("requests", self.requests), ("limits", self.limits)) if v}


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Any:
    return Field(
        default_factory=lambda: Resources(
            requests={"cpu": cpu, "memory": memory},
            limits={"cpu": cpu_limit, "memory": memory_limit},
        )
    )


# The spread of the server and worker pods when their `scheduling.topologySpreadConstraints`
# is not set (an empty list turns it off): at most one pod more on any node than on another,
# soft (ScheduleAnyway: a pod never stays pending for it), counted per ReplicaSet
# (`pod-template-hash`), so that a rollout's new pods spread among themselves instead of
# around the old ones. A constraint without `labelSelector` counts the component's own pods
# (the builders fill in its selector).
DEFAULT_SPREAD: tuple[dict[str, Any], ...] = (
    {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
     "whenUnsatisfiable": "ScheduleAnyway", "matchLabelKeys": ["pod-template-hash"]},
)


class Scheduling(_Model):
    """Where a component's pods may run: the pod spec's fields of the same names, passed
    through as Kubernetes defines them (the CRD validates them)."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] = Field(default_factory=dict)
    topology_spread_constraints: tuple[dict[str, Any], ...] = ()
    priority_class_name: str | None = None


def _spread_by_default() -> Any:
    return Field(default_factory=lambda: Scheduling(
        topology_spread_constraints=copy.deepcopy(DEFAULT_SPREAD)))


class NodePort(_Model):
    enabled: bool = False
    port: int = 30000


class ApiService(_Model):
    type: ServiceType = ServiceType.CLUSTER_IP
    port: int = 8000
    node_port: NodePort = Field(default_factory=NodePort)


class WebConsole(_Model):
    enabled: bool = False


class Server(_Model):
    image: Image = _image("thumbnail-service-server")
    replicas: int = 1
    resources: Resources = _resources("250m", "256Mi", "500m", "512Mi")
    service: ApiService = Field(default_factory=ApiService)
    console: WebConsole = Field(default_factory=WebConsole)
    scheduling: Scheduling = _spread_by_default()


class Concurrency(_Model):
    processes: int = 1
    threads: int = 2


class Autoscaling(_Model):
    """Size the workers from the pending work (controller/autoscaling.py) instead of
    `replicas`: enough that a job waits at most `target_queue_seconds`, none when idle."""

    min_replicas: int = 0
    max_replicas: int
    target_queue_seconds: int = 30
    # A lower size must be wanted this long before the workers shrink (a burst's tail,
    # a pause between batches): damps flapping; growing is never delayed.
    scale_down_delay_seconds: int = 120


class Workers(_Model):
    image: Image = _image("thumbnail-service-worker")
    replicas: int = 2
    # None: `replicas` (and `kubectl scale`) set the size.
    autoscaling: Autoscaling | None = None
    concurrency: Concurrency = Field(default_factory=Concurrency)
    resources: Resources = _resources("250m", "256Mi", "1", "1Gi")
    scheduling: Scheduling = _spread_by_default()


class SecretKeyRef(_Model):
    name: str
    key: str = "password"


class Storage(_Model):
    size: str = "10Gi"


class _Dependency(_Model):
    """PostgreSQL, Redis and object storage say "managed or external" the same way."""

    mode: Mode = Mode.MANAGED

    @property
    def is_managed(self) -> bool:
        return self.mode is Mode.MANAGED


class ManagedPostgres(_Model):
    image: Image = _image("postgres", "16")
    storage: Storage = Field(default_factory=Storage)
    resources: Resources = _resources("100m", "256Mi", "1", "1Gi")
    scheduling: Scheduling = Field(default_factory=Scheduling)


class ExternalPostgres(_Model):
    host: str
    port: int = 5432
    secret_ref: SecretKeyRef


class Postgres(_Dependency):
    database: str = "thumbnails"
    user: str = "thumbnails"
    managed: ManagedPostgres = Field(default_factory=ManagedPostgres)
    external: ExternalPostgres | None = None

    @property
    def connection(self) -> ExternalPostgres | None:
        """The external server in use, or None when the managed one runs."""
        return None if self.is_managed else self.external


class ManagedRedis(_Model):
    image: Image = _image("redis", "7-alpine")
    resources: Resources = _resources("50m", "64Mi", "500m", "256Mi")
    scheduling: Scheduling = Field(default_factory=Scheduling)


class ExternalRedis(_Model):
    host: str
    port: int = 6379
    secret_ref: SecretKeyRef | None = None


class Redis(_Dependency):
    database: int = 0
    managed: ManagedRedis = Field(default_factory=ManagedRedis)
    external: ExternalRedis | None = None

    @property
    def connection(self) -> ExternalRedis | None:
        return None if self.is_managed else self.external


class Console(_Model):
    node_port: NodePort = Field(default_factory=lambda: NodePort(port=30001))


class ManagedMinio(_Model):
    image: Image = _image("minio/minio", "RELEASE.2025-04-22T22-12-26Z")
    storage: Storage = Field(default_factory=Storage)
    resources: Resources = _resources("100m", "256Mi", "1", "1Gi")
    console: Console = Field(default_factory=Console)
    scheduling: Scheduling = Field(default_factory=Scheduling)


class S3SecretRef(_Model):
    name: str
    access_key_key: str = "accessKey"
    secret_key_key: str = "secretKey"


class ExternalS3(_Model):
    endpoint: str
    secure: bool = True
    region: str = "us-east-1"
    secret_ref: S3SecretRef


class Buckets(_Model):
    originals: str = "raws"
    thumbnails: str = "thumbnails"


class BucketInit(_Model):
    image: Image = _image("minio/mc", "RELEASE.2025-04-16T18-13-26Z")


class ObjectStorage(_Dependency):
    buckets: Buckets = Field(default_factory=Buckets)
    managed: ManagedMinio = Field(default_factory=ManagedMinio)
    external: ExternalS3 | None = None
    bucket_init: BucketInit = Field(default_factory=BucketInit)

    @property
    def connection(self) -> ExternalS3 | None:
        return None if self.is_managed else self.external


class Persistence(_Model):
    enabled: bool = True
    storage_class_name: str | None = None
    retention_policy: RetentionPolicy = RetentionPolicy.RETAIN


class Preset(_Model):
    name: str
    width: int
    height: int


def _default_presets() -> tuple[Preset, ...]:
    return tuple(
        Preset(name=name, width=size, height=size)
        for name, size in (("small", 128), ("medium", 512), ("large", 1024))
    )


class Limits(_Model):
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    job_timeout_seconds: int = 30
    rate_limit_per_minute: int = 0  # per API key; 0: none
    tenant_quota_bytes: int = 0  # per tenant, originals + thumbnails; 0: none


FORMATS = ("jpeg", "png", "webp", "gif", "tiff", "avif", "heif")


class Renditions(_Model):
    """Signed renditions of stored originals (docs/api.md, "Renditions"), rendered by the API
    server pods; the key/salt pairs that sign them are generated into the credentials
    Secret (rotated with the other credentials, the previous pair staying valid)."""

    enabled: bool = True
    presets_only: bool = False
    cache_max_age_seconds: int = 31_536_000
    processes: int = 1


class Webhooks(_Model):
    """Completion webhooks (docs/api.md, "Completion webhooks"): the signing secret is
    generated into the credentials Secret; `allowed_networks` opens non-public receivers
    (CIDRs) past the SSRF guard."""

    enabled: bool = True
    allowed_networks: tuple[str, ...] = ()
    max_attempts: int = 8


class Thumbnails(_Model):
    presets: tuple[Preset, ...] = Field(default_factory=_default_presets)
    limits: Limits = Field(default_factory=Limits)
    allowed_formats: tuple[str, ...] = FORMATS
    auth_enabled: bool = True
    log_level: LogLevel = LogLevel.INFO
    renditions: Renditions = Field(default_factory=Renditions)
    webhooks: Webhooks = Field(default_factory=Webhooks)


class DependencyWait(_Model):
    image: Image = _image("busybox", "1.36")


class LocalObjectReference(_Model):
    name: str


class BackupDestination(_Model):
    """Where backups are written: `bucket`/`prefix`/<backup id>/ on the service's own object
    storage, or on another S3 endpoint (`s3`) - the one to use if the backups must outlive
    this service's volumes."""

    bucket: str = "backups"
    # Empty: "<namespace>/<name>" of the ThumbnailService (so several share a bucket).
    prefix: str = ""
    s3: ExternalS3 | None = None


class BackupRetention(_Model):
    """Scheduled backups to keep (on-demand ones are the user's); 0 turns a limit off."""

    count: int = 7
    max_age_days: int = 0


class Backup(_Model):
    # Five-field cron (UTC, e.g. "0 3 * * *"); unset: on-demand ThumbnailBackups only.
    schedule: str | None = None
    destination: BackupDestination = Field(default_factory=BackupDestination)
    retention: BackupRetention = Field(default_factory=BackupRetention)


class FromBackup(_Model):
    """A backup to start from: a ThumbnailBackup of this namespace (`backupName`), or a
    backup id under `destination` (from another namespace or cluster)."""

    backup_name: str | None = None
    backup_id: str | None = None
    destination: BackupDestination = Field(default_factory=BackupDestination)


class Bootstrap(_Model):
    from_backup: FromBackup | None = None


class NetworkPolicy(_Model):
    """NetworkPolicies of this service (builders/network.py). PostgreSQL, Redis and MinIO
    accept connections only from this service's own pods and open none; `api_peers` (as
    a NetworkPolicy's `from`; empty: anyone) may reach the API."""

    enabled: bool = True
    api_peers: tuple[dict[str, Any], ...] = ()


class Monitoring(_Model):
    """Prometheus Operator objects (builders/monitoring.py): PodMonitors of the API server and
    the workers and a PrometheusRule with alerts, created when the cluster serves those
    kinds; `labels` go on them, e.g. for the Prometheus' selectors (ours win on a clash)."""

    enabled: bool = True
    labels: dict[str, str] = Field(default_factory=dict)


class ThumbnailServiceSpec(_Model):
    server: Server = Field(default_factory=Server)
    workers: Workers = Field(default_factory=Workers)
    postgresql: Postgres = Field(default_factory=Postgres)
    redis: Redis = Field(default_factory=Redis)
    object_storage: ObjectStorage = Field(default_factory=ObjectStorage)
    persistence: Persistence = Field(default_factory=Persistence)
    thumbnails: Thumbnails = Field(default_factory=Thumbnails)
    dependency_wait: DependencyWait = Field(default_factory=DependencyWait)
    image_pull_secrets: tuple[LocalObjectReference, ...] = ()
    deletion_protection: bool = False
    backup: Backup = Field(default_factory=Backup)
    bootstrap: Bootstrap = Field(default_factory=Bootstrap)
    network_policy: NetworkPolicy = Field(default_factory=NetworkPolicy)
    monitoring: Monitoring = Field(default_factory=Monitoring)


DEFAULTS = ThumbnailServiceSpec()

# `status.components.<component>.message` while the component's workload does not exist
# (never created, or its creation was refused). controller/status.py writes it; the CRD lets
# the immutable fields that feed a StatefulSet change only while their component's status
# says this (api/schema/v1alpha1.py, `immutable_once_created`).
NOT_CREATED_MESSAGE = "not created yet"


def parse_spec(raw: dict[str, Any] | None) -> ThumbnailServiceSpec:
    """Parse a v1 `spec` (camelCase, possibly partial) into the typed model."""
    return ThumbnailServiceSpec.model_validate(raw or {})
