"""/r/SIGNATURE/OPTIONS/JOB_ID: signed renditions, no API key (the signature is the
permission). HTTP only: options in `renditions.options`, the use case in
`renditions.service`."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from ...imaging import ImagingError, OutputFormat, UnsupportedFormatError
from ...renditions.negotiation import decisive
from ...renditions.options import RenditionOptionError, RenditionSpec, parse_options
from ...renditions.service import RenditionNotFound
from ...renditions.signing import verify
from ...settings import Settings
from ..deps import Services, get_services
from ..errors import ApiError, responses

router = APIRouter(prefix="/r", tags=["renditions"])
ServicesDep = Annotated[Services, Depends(get_services)]


def require_renditions(settings: Settings) -> None:
    if not settings.rendition_pairs:
        raise ApiError(
            404, "renditions_disabled",
            "signed renditions are off on this service: it has no THUMBNAIL_RENDITION_KEYS",
        )


def parsed_options(options: str, settings: Settings) -> RenditionSpec:
    try:
        return parse_options(
            options,
            presets=settings.preset_sizes,
            presets_only=settings.rendition_presets_only,
            max_dimension=settings.max_output_dimension,
        )
    except RenditionOptionError as exc:
        raise ApiError(422, "invalid_option", exc.message, field=exc.field) from None


@router.get(
    "/{signature}/{options}/{job_id}",
    summary="A signed rendition of a job's original",
    response_class=Response,
    responses={
        200: {
            "description": "The image. ETag (SHA-256 of the bytes), public immutable "
            "Cache-Control, `Vary: Accept` for f:auto, X-Rendition: rendered, coalesced "
            "(another request's render), cached (this process' memory) or stored (MinIO).",
            "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        304: {"description": "If-None-Match matched the ETag."},
        **responses(403, 404, 415, 422, 503),
    },
)
async def rendition(
    signature: str, options: str, job_id: str, request: Request, services: ServicesDep
) -> Response:
    settings = services.settings
    require_renditions(settings)
    if not verify(signature, f"/{options}/{job_id}", settings.rendition_pairs):
        raise ApiError(
            403, "invalid_signature",
            "the signature does not match this URL: sign /OPTIONS/JOB_ID as documented "
            "(docs/api.md, Renditions) or ask GET /v1/jobs/{id}/rendition-url",
        )
    spec = parsed_options(options, settings)
    try:
        job = _uuid(job_id)
        found = await services.renditions.get(
            job, spec, decisive(spec.format, request.headers.get("accept"))
        )
    except RenditionNotFound as exc:
        raise ApiError(404, "job_not_found", str(exc), field="job_id") from None
    except UnsupportedFormatError as exc:
        raise ApiError(415, "unsupported_image", str(exc)) from None
    except ImagingError as exc:
        raise ApiError(422, "image_unprocessable", f"cannot render this original: {exc}") \
            from None
    etag = f'"{found.sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={settings.rendition_cache_max_age_seconds}, "
        "immutable",
        "X-Rendition": found.outcome,
    }
    if spec.format is OutputFormat.AUTO:
        headers["Vary"] = "Accept"
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=found.content_type, headers=headers)


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise RenditionNotFound(f"no job {text!r}: not a job id") from None
