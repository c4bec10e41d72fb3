"""Job domain types: what the API stores, the worker reads and the client sees."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from .imaging import FitMode, OutputFormat, RenderOptions, SizeSpec
from .imaging.models import DEFAULT_QUALITY, MAX_QUALITY

# The tenant of THUMBNAIL_API_KEYS' keys, and of every job made before tenants (keys.py).
DEFAULT_TENANT = "default"


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Size(BaseModel):
    name: str = Field(description="Size name: a preset name or WIDTHxHEIGHT.")
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class JobOptions(BaseModel):
    """Validated rendering options, stored with the job as JSON."""

    sizes: list[Size] = Field(min_length=1)
    fit: FitMode = FitMode.INSIDE
    format: OutputFormat = OutputFormat.AUTO
    quality: int = Field(default=DEFAULT_QUALITY, ge=1, le=MAX_QUALITY)

    def to_render_options(self) -> RenderOptions:
        return RenderOptions(
            sizes=tuple(SizeSpec(s.name, s.width, s.height) for s in self.sizes),
            fit=self.fit,
            format=self.format,
            quality=self.quality,
        )


@dataclass(frozen=True)
class NewJob:
    id: UUID
    idempotency_key: str | None
    request_fingerprint: str
    options: JobOptions
    original_key: str
    original_format: str
    original_width: int
    original_height: int
    original_bytes: int
    callback_url: str | None = None
    tenant: str = DEFAULT_TENANT


@dataclass(frozen=True)
class CallbackAttempt:
    attempt: int
    attempted_at: datetime
    status_code: int | None  # None: no HTTP answer
    error: str | None  # None after a 2xx


@dataclass(frozen=True)
class Callback:
    """The job's completion webhook: where, how far (pending, delivered, failed), tries."""

    url: str
    state: str | None  # None until the job finishes
    attempts: tuple[CallbackAttempt, ...] = ()


@dataclass(frozen=True)
class ThumbnailRecord:
    name: str
    width: int
    height: int
    format: str
    content_type: str
    bytes: int
    sha256: str
    object_key: str


@dataclass(frozen=True)
class JobRecord:
    id: UUID
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: str | None
    idempotency_key: str | None
    request_fingerprint: str
    options: JobOptions
    original_key: str
    original_format: str
    original_width: int
    original_height: int
    original_bytes: int
    lease_token: UUID | None
    thumbnails: tuple[ThumbnailRecord, ...] = ()
    placeholder: str | None = None  # ThumbHash, base64, once succeeded
    callback: Callback | None = None
    tenant: str = DEFAULT_TENANT

    @classmethod
    def from_row(
        cls,
        row: Any,
        thumbnails: tuple[ThumbnailRecord, ...] = (),
        callback_attempts: tuple[CallbackAttempt, ...] = (),
    ) -> JobRecord:
        return cls(
            id=row["id"],
            status=JobStatus(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            attempts=row["attempts"],
            error=row["error"],
            idempotency_key=row["idempotency_key"],
            request_fingerprint=row["request_fingerprint"],
            options=JobOptions.model_validate(row["options"]),
            original_key=row["original_key"],
            original_format=row["original_format"],
            original_width=row["original_width"],
            original_height=row["original_height"],
            original_bytes=row["original_bytes"],
            lease_token=row["lease_token"],
            thumbnails=thumbnails,
            placeholder=row["placeholder"],
            callback=Callback(row["callback_url"], row["callback_state"], callback_attempts)
            if row["callback_url"] else None,
            tenant=row["tenant"],
        )
