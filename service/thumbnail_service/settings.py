"""The one typed configuration object, read from THUMBNAIL_* environment variables.

Documented variable by variable in docs/configuration.md; the operator renders the
non-secret fields into a ConfigMap and the SecretStr fields into a Secret.
"""

from __future__ import annotations

import ipaddress
import json
import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .imaging import ImageFormat
from .renditions.signing import SigningPair
from .webhooks.targets import IPNetwork

DEFAULT_PRESETS = {
    "small": {"width": 128, "height": 128},
    "medium": {"width": 512, "height": 512},
    "large": {"width": 1024, "height": 1024},
}
PRESET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class Preset(BaseModel):
    width: int = Field(ge=1, le=16384)
    height: int = Field(ge=1, le=16384)


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="THUMBNAIL_", extra="ignore", frozen=True, validate_default=True,
        hide_input_in_errors=True,  # the values include credentials: never in a log
    )

    # PostgreSQL: the source of truth for jobs.
    database_host: str = "127.0.0.1"
    database_port: int = Field(default=5432, ge=1, le=65535)
    database_name: str = "thumbnails"
    database_user: str = "thumbnails"
    database_password: SecretStr = SecretStr("")
    database_pool_max_size: int = Field(default=10, ge=1)

    # Redis: Dramatiq's broker (no persistence needed: the sweeper recovers lost messages).
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_db: int = Field(default=0, ge=0)
    redis_password: SecretStr = SecretStr("")
    queue_name: str = "thumbnails"

    # S3 / MinIO.
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    bucket_originals: str = "raws"
    bucket_thumbnails: str = "thumbnails"

    # Fail fast: the longest wait for PostgreSQL, Redis or MinIO to connect or answer one
    # call (a repository operation, a Redis command, an S3 request without progress).
    # Past it the call fails: the API answers 503, the worker retries the job.
    dependency_timeout_seconds: float = Field(default=3, gt=0, le=60)

    # API.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    auth_enabled: bool = True
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    download_mode: Literal["stream", "redirect"] = "stream"
    presigned_url_ttl_seconds: int = Field(default=300, ge=1, le=604800)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Request timeouts (slowloris, stalled uploads): complete headers within this of the
    # connection or the previous response; no pause in a body longer than the idle timeout;
    # the whole body within the body timeout. Past them: 408 and the connection closed.
    http_header_timeout_seconds: float = Field(default=10, gt=0)
    http_body_idle_timeout_seconds: float = Field(default=10, gt=0)
    http_body_timeout_seconds: float = Field(default=120, gt=0)
    # The web console at /console (docs/console.md): static pages that call this API with a
    # key the user enters. Off unless asked for; `make dev` turns it on.
    console_enabled: bool = False

    # Signed renditions (docs/api.md, "Renditions"): imgproxy-style key/salt pairs in hex,
    # the first signs, every pair verifies (add a pair before dropping one). No pair: off.
    rendition_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    rendition_salts: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Only `preset:NAME` sizes (with fit and f): a bounded set of renditions per original.
    rendition_presets_only: bool = False
    # Cache-Control max-age of a rendition (its URL never changes meaning: immutable).
    rendition_cache_max_age_seconds: int = Field(default=31_536_000, ge=0)
    # Render processes of an API replica for renditions (started with the API).
    rendition_processes: int = Field(default=1, ge=1, le=64)
    # Recently served renditions kept in each API process (0: none), for at most a minute.
    rendition_memory_cache_mib: int = Field(default=32, ge=0, le=4096)

    # Completion webhooks (docs/api.md, "Completion webhooks"). Deliveries are signed with
    # every secret (HMAC-SHA256); none: callback URLs are refused. Non-public targets only
    # inside these CIDRs (the SSRF guard; e.g. 10.0.0.0/8 for receivers in the cluster).
    webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    webhook_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    # Backoff between attempts: doubling from the minimum, at most the maximum (8 attempts:
    # about 2 minutes in all with the defaults).
    webhook_retry_min_seconds: float = Field(default=1, gt=0)
    webhook_retry_max_seconds: float = Field(default=60, gt=0)
    webhook_timeout_seconds: float = Field(default=5, gt=0, le=60)
    # How often a sweeper looks for due webhooks (a finished job's is due at once).
    webhook_poll_seconds: float = Field(default=0.5, gt=0, le=60)

    # Tenants (docs/api.md, "Tenants"): requests per minute per API key (429 past it; a key
    # made with `thumbnail-admin keys create --rate-limit` has its own), and bytes of
    # originals + thumbnails per tenant (403 for a submission past it). 0: no limit.
    rate_limit_per_minute: int = Field(default=0, ge=0)
    tenant_quota_bytes: int = Field(default=0, ge=0)

    # Input limits and options.
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_pixels: int = Field(default=50_000_000, ge=1)
    max_output_dimension: int = Field(default=4096, ge=1)
    max_sizes_per_job: int = Field(default=10, ge=1)
    presets: dict[str, Preset] = Field(
        default_factory=lambda: {k: Preset(**v) for k, v in DEFAULT_PRESETS.items()}
    )
    allowed_formats: Annotated[list[ImageFormat], NoDecode] = Field(
        default_factory=lambda: list(ImageFormat)
    )

    # Worker and recovery.
    job_timeout_seconds: float = Field(default=30, gt=0)
    # "process": render in killable child processes (one per worker thread), killed at
    # job_timeout + render_kill_grace; "inline": in the worker, cooperative limit only.
    render_isolation: Literal["process", "inline"] = "process"
    render_kill_grace_seconds: float = Field(default=1, gt=0)
    render_memory_limit_bytes: int = Field(default=0, ge=0)  # RLIMIT_AS per child; 0 = off
    # Concurrent renders per worker process (render children, or render threads inline);
    # 0 = one per worker thread. Fewer renders than threads lets one job's I/O (download,
    # uploads, database) overlap another job's render instead of idling a render process.
    render_processes: int = Field(default=0, ge=0)
    worker_threads: int = Field(default=2, ge=1)
    # Longest pause between two fetches while the queue is empty (Dramatiq's idle backoff,
    # 1000 ms by default): bounds how long a job submitted to an idle worker waits.
    worker_idle_poll_ms: int = Field(default=100, ge=1, le=60_000)
    worker_processes: int = Field(default=1, ge=1)
    # Supervision (docs/configuration.md, "Worker supervision"): every worker process beats
    # this often, to its supervisor (which replaces one that stops) and to Redis (which the
    # API counts); 3 missed beats make it dead. A port > 0 serves the supervisor's
    # /healthz (liveness) and /readyz on THUMBNAIL_HOST.
    worker_heartbeat_seconds: float = Field(default=5, gt=0, le=300)
    worker_health_port: int = Field(default=0, ge=0, le=65535)
    max_attempts: int = Field(default=5, ge=1)
    retry_min_backoff_seconds: float = Field(default=2, gt=0)
    retry_max_backoff_seconds: float = Field(default=300, gt=0)
    job_lease_seconds: float = Field(default=120, gt=0)
    sweep_interval_seconds: float = Field(default=30, gt=0)
    # An original with no job row older than this is removed by the sweeper (worker/orphans.py):
    # far above THUMBNAIL_HTTP_BODY_TIMEOUT_SECONDS, the longest a submission can run.
    orphan_grace_seconds: float = Field(default=3600, gt=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("rendition_keys", "rendition_salts", mode="before")
    @classmethod
    def _parse_hex_list(cls, value: Any) -> Any:
        values = _split_csv(value)
        for item in values if isinstance(values, list) else ():
            text = item.get_secret_value() if isinstance(item, SecretStr) else str(item)
            try:
                bytes.fromhex(text)
            except ValueError:
                raise ValueError("rendition keys and salts must be hex strings") from None
        return values

    @field_validator("webhook_secrets", mode="before")
    @classmethod
    def _parse_secrets(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: Any) -> Any:
        values = _split_csv(value)
        for item in values if isinstance(values, list) else ():
            try:
                ipaddress.ip_network(str(item), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a CIDR such as 10.0.0.0/8") from None
        return values

    @cached_property
    def webhook_networks(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(n, strict=False) for n in self.webhook_allowed_networks]

    @model_validator(mode="after")
    def _pairs_match(self) -> Settings:
        if len(self.rendition_keys) != len(self.rendition_salts):
            raise ValueError(
                f"THUMBNAIL_RENDITION_KEYS has {len(self.rendition_keys)} entries and "
                f"THUMBNAIL_RENDITION_SALTS {len(self.rendition_salts)}: give one salt per key"
            )
        return self

    @cached_property
    def rendition_pairs(self) -> list[SigningPair]:
        """Key/salt pairs in order: the first signs; empty means renditions are off."""
        return [
            SigningPair.from_hex(k.get_secret_value(), s.get_secret_value())
            for k, s in zip(self.rendition_keys, self.rendition_salts, strict=True)
        ]

    @field_validator("allowed_formats", mode="before")
    @classmethod
    def _parse_formats(cls, value: Any) -> Any:
        return [str(v).lower() for v in _split_csv(value)]

    @field_validator("presets", mode="before")
    @classmethod
    def _parse_presets(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, dict):
            for name in value:
                if not re.match(PRESET_NAME_PATTERN, name):
                    raise ValueError(f"preset name {name!r} must match {PRESET_NAME_PATTERN}")
        return value

    @property
    def render_concurrency(self) -> int:
        """Renders one worker process runs at once (THUMBNAIL_RENDER_PROCESSES, default
        THUMBNAIL_WORKER_THREADS); never more than its threads could use."""
        return min(self.render_processes or self.worker_threads, self.worker_threads)

    @cached_property
    def preset_sizes(self) -> dict[str, tuple[int, int]]:
        return {name: (p.width, p.height) for name, p in self.presets.items()}

    @cached_property
    def allowed_format_set(self) -> frozenset[ImageFormat]:
        return frozenset(self.allowed_formats)

    def redacted(self) -> dict[str, Any]:
        """Effective configuration with every secret replaced by '**********' (or '' if unset)."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump(mode="python").items():
            out[name] = _redact(value)
        return out


def _redact(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********" if value.get_secret_value() else ""
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, ImageFormat):
        return value.value
    return value
