"""Response models: what clients see (and what the OpenAPI document promises)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import Request
from pydantic import BaseModel, Field

from ..jobs import JobOptions, JobRecord, JobStatus

# The routes JobOut links to, as paths (a webhook's payload has no request to build URLs on;
# tests/service/unit/test_openapi.py checks them against the app's routes).
ROUTE_PATHS = {
    "get_job": "/v1/jobs/{job_id}",
    "download_thumbnail": "/v1/jobs/{job_id}/thumbnails/{name}",
}


class ThumbnailOut(BaseModel):
    name: str
    width: int
    height: int
    format: str = Field(description="Output encoding: jpeg, png, webp or avif.")
    content_type: str
    bytes: int
    url: str = Field(description="Download URL (needs the API key unless auth is disabled).")


class OriginalOut(BaseModel):
    format: str
    width: int = Field(description="Displayed width (EXIF orientation applied).")
    height: int
    bytes: int


class CallbackAttemptOut(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    error: str | None = Field(description="Why it did not count as delivered; null after 2xx.")


class CallbackOut(BaseModel):
    url: str
    state: Literal["pending", "delivered", "failed"] | None = Field(
        description="Null until the job finishes; then pending (being delivered, retried "
        "with backoff), delivered (a 2xx) or failed (attempts used up, or a refused address)."
    )
    attempts: list[CallbackAttemptOut]


class JobOut(BaseModel):
    id: UUID
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = Field(description="First time a worker picked the job up.")
    finished_at: datetime | None
    attempts: int = Field(description="How many times a worker started processing the job.")
    error: str | None = Field(
        description="Why the job failed (or why the last attempt failed, while retrying)."
    )
    options: JobOptions
    original: OriginalOut
    thumbnails: list[ThumbnailOut] = Field(description="Filled in once the job succeeded.")
    placeholder: str | None = Field(
        description="A ThumbHash (https://evanw.github.io/thumbhash/) of the image, base64, "
        "once the job succeeded: a page decodes it into a blurred preview with the image's "
        "aspect ratio and colours while a thumbnail loads. Null before, or if it could not "
        "be computed."
    )
    callback: CallbackOut | None = Field(
        default=None, description="The completion webhook, when the job was given a "
        "callback_url: its delivery state and every attempt."
    )
    url: str

    @classmethod
    def from_record(cls, job: JobRecord, request: Request | None) -> JobOut:
        """`request`: absolute URLs on its base; None (a webhook's payload): paths."""

        def url_for(route: str, /, **params: Any) -> str:
            if request is not None:
                return str(request.url_for(route, **params))
            return ROUTE_PATHS[route].format(**params)

        return cls(
            id=job.id,
            status=job.status,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            attempts=job.attempts,
            error=job.error,
            options=job.options,
            original=OriginalOut(
                format=job.original_format,
                width=job.original_width,
                height=job.original_height,
                bytes=job.original_bytes,
            ),
            thumbnails=[
                ThumbnailOut(
                    name=t.name,
                    width=t.width,
                    height=t.height,
                    format=t.format,
                    content_type=t.content_type,
                    bytes=t.bytes,
                    url=url_for("download_thumbnail", job_id=job.id, name=t.name),
                )
                for t in job.thumbnails
            ],
            placeholder=job.placeholder,
            callback=None if job.callback is None else CallbackOut(
                url=job.callback.url,
                state=job.callback.state,  # type: ignore[arg-type]  # the table's CHECK
                attempts=[CallbackAttemptOut(**vars(a)) for a in job.callback.attempts],
            ),
            url=url_for("get_job", job_id=job.id),
        )


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )


class DependencyCheck(BaseModel):
    status: Literal["ok", "unavailable"]
    latency_ms: float
    error: str | None = None


class FormatDemand(BaseModel):
    format: str = Field(description="Requested output format (`auto` too).")
    pending_jobs: int = Field(description="Jobs of this format queued or processing.")
    pending_megapixel_renders: float = Field(
        description="Their cost units: each job's source megapixels times its sizes."
    )
    sampled_jobs: int = Field(
        description="Recently rendered jobs of this format the cost below was learned from."
    )
    render_seconds_per_megapixel_render: float | None = Field(
        description="Render seconds per cost unit, as the workers measured them; null when "
        "no job of this format was rendered recently."
    )


class WorkDemand(BaseModel):
    """For the operator's autoscaler (docs/operator.md, "Autoscaling")."""

    formats: list[FormatDemand]
    overhead_seconds_per_job: float | None = Field(
        description="Median seconds of a job's first attempt spent on anything but rendering "
        "(download, upload, recording); null until a job was rendered."
    )


class WorkersHealth(BaseModel):
    status: Literal["ok", "none", "unknown"] = Field(
        description="ok: at least one worker process is alive; none: no worker is, so jobs "
        "are accepted but not processed; unknown: Redis (where workers beat) is unreachable."
    )
    alive: int | None = Field(
        description="Worker processes whose last heartbeat (every "
        "THUMBNAIL_WORKER_HEARTBEAT_SECONDS) is at most three beats old; null if unknown."
    )
    oldest_queued_job_age_seconds: float | None = Field(
        description="Age of the oldest job still waiting in `queued`; null if none waits "
        "(or PostgreSQL is unreachable). Growing while `alive` is 0: nothing processes jobs."
    )
    oldest_queued_job_since: datetime | None = Field(
        description="When the oldest job still waiting in `queued` was submitted (the same "
        "job as the age); null if none waits or PostgreSQL is unreachable. Unlike the age it "
        "stays the same while that job waits, so a watcher (the operator's status) can "
        "store it without rewriting it on every look."
    )
    queued_jobs: int | None = Field(
        description="Jobs waiting in `queued` (the backlog); null if PostgreSQL is unreachable."
    )
    jobs_finished_last_5m: int | None = Field(
        description="Jobs that succeeded or failed in the last five minutes (recent "
        "throughput); null if PostgreSQL is unreachable."
    )
    demand: WorkDemand | None = Field(
        default=None,
        description="Pending work and what it costs, by requested format; null if "
        "PostgreSQL is unreachable.",
    )


class DetailedHealth(BaseModel):
    status: Literal["ok", "unavailable"]
    message: str
    checks: dict[str, DependencyCheck]
    workers: WorkersHealth


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class RenditionUrl(BaseModel):
    url: str = Field(description="The signed rendition URL, absolute (this API's base URL).")
    path: str = Field(description="The same URL's path: /r/SIGNATURE/OPTIONS/JOB_ID.")
