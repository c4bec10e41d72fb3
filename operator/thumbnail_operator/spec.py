"""Typed model of a ThumbnailService (v1alpha1) spec.

The API server applies the CRD defaults before the operator sees an object; the same
defaults are repeated here so that the builders stay total on partial input (unit tests,
objects stored before a default was added). Validation is the CRD's job, not this module's.
"""

from __future__ import annotations

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


class RetentionPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    LOAD_BALANCER = "LoadBalancer"


class Image(_Model):
    repository: str
    tag: str = "latest"
    pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


def _image(repository: str, tag: str = "latest") -> Any:
    return Field(default_factory=lambda: Image(repository=repository, tag=tag))


class Images(_Model):
    server: Image = _image("thumbnail-service-server")
    worker: Image = _image("thumbnail-service-worker")
    postgresql: Image = _image("postgres", "16")
    redis: Image = _image("redis", "7-alpine")
    minio: Image = _image("minio/minio", "RELEASE.2025-04-22T22-12-26Z")
    minio_client: Image = _image("minio/mc", "RELEASE.2025-04-16T18-13-26Z")
    wait: Image = _image("busybox", "1.36")
    pull_secrets: tuple[str, ...] = ()


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


class NodePort(_Model):
    enabled: bool = False
    port: int = 30000


class ApiService(_Model):
    type: ServiceType = ServiceType.CLUSTER_IP
    port: int = 8000
    node_port: NodePort = Field(default_factory=NodePort)


class Server(_Model):
    replicas: int = 1
    resources: Resources = _resources("250m", "256Mi", "500m", "512Mi")
    service: ApiService = Field(default_factory=ApiService)


class Concurrency(_Model):
    processes: int = 1
    threads: int = 2


class Worker(_Model):
    replicas: int = 2
    concurrency: Concurrency = Field(default_factory=Concurrency)
    resources: Resources = _resources("250m", "256Mi", "1", "1Gi")


class SecretKeyRef(_Model):
    name: str
    key: str = "password"


class Storage(_Model):
    size: str = "10Gi"


class ExternalPostgres(_Model):
    host: str
    port: int = 5432
    secret_ref: SecretKeyRef


class Postgres(_Model):
    enabled: bool = True
    database: str = "thumbnails"
    user: str = "thumbnails"
    storage: Storage = Field(default_factory=Storage)
    resources: Resources = _resources("100m", "256Mi", "1", "1Gi")
    external: ExternalPostgres | None = None


class ExternalRedis(_Model):
    host: str
    port: int = 6379
    secret_ref: SecretKeyRef | None = None


class Redis(_Model):
    enabled: bool = True
    database: int = 0
    resources: Resources = _resources("50m", "64Mi", "500m", "256Mi")
    external: ExternalRedis | None = None


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


class Console(_Model):
    node_port: NodePort = Field(default_factory=lambda: NodePort(port=30001))


class Minio(_Model):
    enabled: bool = True
    storage: Storage = Field(default_factory=Storage)
    resources: Resources = _resources("100m", "256Mi", "1", "1Gi")
    console: Console = Field(default_factory=Console)
    buckets: Buckets = Field(default_factory=Buckets)
    external: ExternalS3 | None = None


class Persistence(_Model):
    enabled: bool = True
    storage_class_name: str | None = None
    retention_policy: RetentionPolicy = RetentionPolicy.RETAIN


class Preset(_Model):
    width: int
    height: int


def _default_presets() -> dict[str, Preset]:
    return {
        name: Preset(width=size, height=size)
        for name, size in (("small", 128), ("medium", 512), ("large", 1024))
    }


class Limits(_Model):
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    job_timeout_seconds: int = 30


DEFAULT_FORMATS = ("jpeg", "png", "webp", "gif", "tiff", "avif", "heif")


class Thumbnails(_Model):
    presets: dict[str, Preset] = Field(default_factory=_default_presets)
    limits: Limits = Field(default_factory=Limits)
    allowed_formats: tuple[str, ...] = DEFAULT_FORMATS
    auth_enabled: bool = True
    log_level: str = "INFO"


class ThumbnailServiceSpec(_Model):
    images: Images = Field(default_factory=Images)
    server: Server = Field(default_factory=Server)
    worker: Worker = Field(default_factory=Worker)
    postgresql: Postgres = Field(default_factory=Postgres)
    redis: Redis = Field(default_factory=Redis)
    minio: Minio = Field(default_factory=Minio)
    persistence: Persistence = Field(default_factory=Persistence)
    thumbnails: Thumbnails = Field(default_factory=Thumbnails)


def parse_spec(raw: dict[str, Any] | None) -> ThumbnailServiceSpec:
    """Parse the CR's `spec` (camelCase, possibly partial) into the typed model."""
    return ThumbnailServiceSpec.model_validate(raw or {})
