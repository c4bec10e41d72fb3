"""/v1/jobs: submit, inspect, list, download, delete. HTTP only: the input checks are in
`upload`, the use cases in `submission` and `deletion`."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from ...deletion import delete_job_and_images
from ...jobs import JobRecord, JobStatus
from ...renditions.signing import signed_path
from ...settings import Settings
from ...storage import ObjectNotFound
from ...submission import IdempotencyConflict, Submitter
from ..auth import current_principal, require_api_key
from ..deps import Services, get_services
from ..errors import ApiError, responses
from ..numbers import ASCII_INT
from ..schemas import JobList, JobOut, RenditionUrl
from ..upload import fingerprint, form_schema, parse_callback_url, validated_upload
from .renditions import parsed_options, require_renditions

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Depends(require_api_key)])
ServicesDep = Annotated[Services, Depends(get_services)]
JobId = Annotated[UUID, Path(description="The job id returned by POST /v1/jobs.")]
IDEMPOTENCY_KEY_MAX = 255

_IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retrying with the same key returns the same job instead of creating a "
    "duplicate; the same key with another upload or options is a 409. Empty: 400.",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
}
# A cursor is base64url (no padding) of "<created_at ISO 8601, UTC>|<job id>", as
# _encode_cursor writes it; anything else is refused (400) before it reaches SQL.
CURSOR_MAX_LENGTH = 128
CURSOR_PATTERN = "^[A-Za-z0-9_-]*$"
CURSOR_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # no job is older; nothing can overflow
_CURSOR_PARAMETER = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "description": "`next_cursor` of the previous page (empty or absent: the first page). "
    "Anything this API did not return is a 400.",
    "schema": {"type": "string", "pattern": CURSOR_PATTERN, "maxLength": CURSOR_MAX_LENGTH},
}


def _header(description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    """An OpenAPI response header: a string, sent always (required) or only sometimes."""
    return {
        "description": description,
        "required": required,
        "schema": {"type": "string", **schema},
    }


CACHE_FOREVER = "private, max-age=31536000, immutable"  # a job's thumbnails never change
_ETAG = _header(
    "The SHA-256 of the image bytes, quoted (a strong ETag).",
    required=True,
    pattern='^"[0-9a-f]{64}"$',
)
_CACHE_FOREVER = _header(CACHE_FOREVER, required=True, enum=[CACHE_FOREVER])


def document_limits(openapi: dict[str, Any], settings: Settings) -> None:
    """Fill in what depends on the settings: the upload form (presets, limits)."""
    openapi["paths"][router.prefix]["post"]["requestBody"] = {
        "required": True,
        "content": {"multipart/form-data": {"schema": form_schema(settings)}},
    }


def _job_location(request: Request, job: JobRecord) -> dict[str, str]:
    return {"Location": str(request.url_for("get_job", job_id=job.id))}


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Submit an image",
    # The request body (the form, from the settings) is added by document_limits.
    openapi_extra={"parameters": [_IDEMPOTENCY_KEY_PARAMETER]},
    responses={
        202: {
            "description": "Job accepted (or, with a known Idempotency-Key, the earlier job; "
            "then the Idempotent-Replayed header is true).",
            "headers": {
                "Location": _header("The job's URL.", required=True),
                "Idempotent-Replayed": _header(
                    "true: this is the earlier job of the same Idempotency-Key.",
                    enum=["true"],
                ),
            },
        },
        **responses(400, 401, 403, 409, 413, 415, 422, 503),
    },
)
async def submit_job(
    request: Request,
    response: Response,
    services: ServicesDep,
    idempotency_key: Annotated[
        str | None,
        # Documented in _IDEMPOTENCY_KEY_PARAMETER (minLength is ours, a 400, see below).
        Header(max_length=IDEMPOTENCY_KEY_MAX, include_in_schema=False),
    ] = None,
) -> JobOut:
    if idempotency_key is not None and not idempotency_key.strip():
        # An empty key is no key at all, yet as a string it would make every keyless-looking
        # retry collide with the first: refuse it rather than guess.
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key is empty: send 1 to 255 characters, or omit the header",
            field="Idempotency-Key",
        )
    upload, options, info = await validated_upload(request, services.settings)
    principal = current_principal(request)
    # The field, else the key's default webhook (thumbnail-admin keys create --callback-url).
    callback_url = parse_callback_url(upload.fields, services.settings) or (
        principal.callback_url if services.settings.webhook_secrets else None)
    await _within_quota(services, principal.tenant, len(upload.data))
    submitter = Submitter(services.repository, services.storage, services.queue)
    try:
        submission = await submitter.submit(
            upload.data, options, info,
            fingerprint=fingerprint(upload.data, options, callback_url),
            idempotency_key=idempotency_key, callback_url=callback_url,
            tenant=principal.tenant,
        )
    except IdempotencyConflict:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different upload or options",
            field="Idempotency-Key",
        ) from None
    response.headers.update(_job_location(request, submission.job))
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.from_record(submission.job, request)


@router.get(
    "/{job_id}", response_model=JobOut, summary="Get a job", responses=responses(401, 404, 422, 503)
)
async def get_job(job_id: JobId, request: Request, services: ServicesDep) -> JobOut:
    return JobOut.from_record(await _load(request, services, job_id), request)


@router.get(
    "/{job_id}/rendition-url",
    response_model=RenditionUrl,
    summary="Sign a rendition URL",
    responses=responses(401, 404, 422, 503),
)
async def rendition_url(
    job_id: JobId,
    options: Annotated[
        str,
        Query(
            description="The options segment, e.g. `w:300,h:200,fit:cover,f:auto` or "
            "`preset:small` (docs/api.md, Renditions).",
            max_length=256,
        ),
    ],
    request: Request,
    services: ServicesDep,
) -> RenditionUrl:
    settings = services.settings
    require_renditions(settings)
    parsed_options(options, settings)  # a URL that would only answer 422 is not signed
    job = await _load(request, services, job_id)
    path = signed_path(settings.rendition_pairs[0], options, str(job.id))
    return RenditionUrl(url=str(request.base_url).rstrip("/") + path, path=path)


async def _within_quota(services: Services, tenant: str, adding: int) -> None:
    quota = services.settings.tenant_quota_bytes
    if not quota:
        return
    used = await services.repository.tenant_usage(tenant)
    if used + adding > quota:
        raise ApiError(
            403, "quota_exceeded",
            f"tenant {tenant!r} stores {used} of its {quota} bytes (originals and thumbnails); "
            f"this upload of {adding} bytes does not fit: delete jobs to make room",
            field="file",
        )


async def _load(request: Request, services: Services, job_id: UUID) -> JobRecord:
    """The caller's tenant's job, or a 404: another tenant's job does not exist for it."""
    job = await services.repository.get(job_id)
    if job is None or job.tenant != current_principal(request).tenant:
        raise ApiError(404, "job_not_found", f"no job {job_id}", field="job_id")
    return job


@router.get(
    "",
    response_model=JobList,
    summary="List jobs, newest first",
    responses=responses(400, 401, 422, 503),
    openapi_extra={"parameters": [_CURSOR_PARAMETER]},
)
async def list_jobs(
    request: Request,
    services: ServicesDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=100), ASCII_INT] = 20,
    # Documented in _CURSOR_PARAMETER; _decode_cursor enforces it.
    cursor: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> JobList:
    before = _decode_cursor(cursor) if cursor else None
    jobs = await services.repository.list_jobs(
        tenant=current_principal(request).tenant, status=status, before=before, limit=limit + 1
    )
    page, more = jobs[:limit], len(jobs) > limit
    return JobList(
        items=[JobOut.from_record(j, request) for j in page],
        next_cursor=_encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    )


def _encode_cursor(created_at: datetime, job_id: UUID) -> str:
    raw = f"{created_at.isoformat()}|{job_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Only what _encode_cursor could have written: bounded length and alphabet, a UTC time
    no earlier than CURSOR_EARLIEST, and the same text when encoded again (so no other
    spelling, offset or digit script gets through to SQL)."""
    invalid = ApiError(
        400,
        "invalid_cursor",
        "cursor is not a next_cursor returned by this API; omit it to start from the newest",
        field="cursor",
    )
    if len(cursor) > CURSOR_MAX_LENGTH or not re.fullmatch(CURSOR_PATTERN, cursor):
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        created, job_id = raw.split("|")
        position = datetime.fromisoformat(created), UUID(job_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid from None
    created_at = position[0]
    if (
        created_at.utcoffset() != timedelta(0)
        or created_at < CURSOR_EARLIEST
        or _encode_cursor(*position) != cursor
    ):
        raise invalid
    return position


@router.get(
    "/{job_id}/thumbnails/{name}",
    summary="Download a thumbnail",
    response_class=Response,
    responses={
        200: {
            "description": "The image, with Content-Type, ETag and Cache-Control.",
            "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
            "headers": {
                "ETag": _ETAG,
                "Cache-Control": _CACHE_FOREVER,
                "Content-Disposition": _header(
                    'inline; filename="{job_id}-{name}.{extension}"', required=True
                ),
            },
        },
        304: {
            "description": "If-None-Match matched the ETag.",
            "headers": {"ETag": _ETAG, "Cache-Control": _CACHE_FOREVER},
        },
        307: {
            "description": "Redirect to a short-lived presigned URL (redirect=true).",
            "headers": {
                "Location": _header("The presigned object URL.", required=True),
                "Cache-Control": _header("no-store", required=True, enum=["no-store"]),
            },
        },
        **responses(401, 404, 409, 422, 503),
    },
)
async def download_thumbnail(
    job_id: JobId,
    name: str,
    request: Request,
    services: ServicesDep,
    redirect: Annotated[
        bool | None,
        Query(
            description="Redirect to a presigned object URL "
            "instead of streaming; default from "
            "THUMBNAIL_DOWNLOAD_MODE."
        ),
    ] = None,
) -> Response:
    job = await _load(request, services, job_id)
    thumb = next((t for t in job.thumbnails if t.name == name), None)
    if thumb is None:
        requested = any(s.name == name for s in job.options.sizes)
        if job.status is JobStatus.FAILED and requested:
            raise ApiError(  # never "not available yet": a failed job will not get it
                404, "thumbnail_not_found",
                f"job {job_id} failed ({job.error or 'no reason recorded'}); it has no "
                f"thumbnail {name!r}", field="name",
            )
        if job.status is not JobStatus.SUCCEEDED and requested:
            raise ApiError(
                409,
                "job_not_finished",
                f"job is {job.status}; thumbnail {name!r} is not available yet",
                field="name",
            )
        raise ApiError(
            404, "thumbnail_not_found", f"job {job_id} has no thumbnail {name!r}", field="name"
        )
    etag = f'"{thumb.sha256}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_FOREVER}
    if redirect if redirect is not None else services.settings.download_mode == "redirect":
        url = await services.storage.presigned_url(services.storage.thumbnails, thumb.object_key)
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    try:
        data = await services.storage.get(services.storage.thumbnails, thumb.object_key)
    except ObjectNotFound:
        raise ApiError(
            404, "thumbnail_not_found", f"thumbnail {name!r} is missing from storage", field="name"
        ) from None
    extension = "jpg" if thumb.format == "jpeg" else thumb.format
    headers["Content-Disposition"] = f'inline; filename="{job_id}-{name}.{extension}"'
    return Response(data, media_type=thumb.content_type, headers=headers)


@router.delete(
    "/{job_id}",
    status_code=204,
    summary="Delete a job and its images",
    response_class=Response,
    responses=responses(401, 404, 422, 503),
)
async def delete_job(job_id: JobId, request: Request, services: ServicesDep) -> Response:
    job = await _load(request, services, job_id)
    await delete_job_and_images(job, services.repository, services.storage)
    services.renditions.forget(job.id)
    return Response(status_code=204)
