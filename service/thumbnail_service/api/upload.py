"""POST /v1/jobs input: the multipart body read under a byte limit, option parsing, and the
image checked from its own bytes (`validated_upload`).

The body is counted while it streams in and abandoned as soon as it exceeds the limit, so
an oversized upload is never buffered. The image is then checked from its own bytes
(magic number, then header) before anything is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from .. import imaging
from ..imaging import FitMode, OutputFormat
from ..imaging.models import DEFAULT_QUALITY, MAX_QUALITY
from ..jobs import JobOptions, Size
from ..settings import PRESET_NAME_PATTERN, Settings
from ..webhooks.targets import (
    MAX_URL_LENGTH,
    CallbackRefused,
    check_written_address,
)
from ..webhooks.targets import parse_callback_url as parse_callback_url_text
from .errors import ApiError
from .numbers import parse_ascii_int

FORM_FIELDS = ("file", "sizes", "fit", "format", "quality", "callback_url")
QUALITY_MIN, QUALITY_MAX, QUALITY_DEFAULT = 1, MAX_QUALITY, DEFAULT_QUALITY
# Room for multipart boundaries, part headers and the option fields next to the file.
FORM_OVERHEAD_BYTES = 64 * 1024
# After rejecting an oversized upload we keep reading (and discarding) a little, so the
# client finishes sending and can read our 413 instead of a connection reset.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_SECONDS = 10.0
# ASCII digits only (\d would take "٣"); widths/heights are then parsed by parse_ascii_int.
_SIZE_PATTERN = re.compile(r"(?:(?P<name>[^=]+)=)?(?P<w>[0-9]{1,6})x(?P<h>[0-9]{1,6})")


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class Upload:
    data: bytes
    fields: dict[str, list[str]]


def _too_large(settings: Settings) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"upload exceeds the limit of {settings.max_upload_bytes} bytes",
        field="file",
    )


async def _drain(request: Request) -> None:
    deadline = time.monotonic() + DRAIN_MAX_SECONDS
    drained = 0
    try:
        async for chunk in request.stream():
            drained += len(chunk)
            if drained > DRAIN_MAX_BYTES or time.monotonic() > deadline:
                return
    except Exception:  # client gone or stream already consumed: nothing left to drain
        return


async def read_upload(request: Request, settings: Settings) -> Upload:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send multipart/form-data with the image in the 'file' field",
        )
    # A declared Content-Length over the limit never gets here: RequestTimeouts (api/timeouts)
    # answers it 413 from the header. What is checked here is the body actually received.
    limit = settings.max_upload_bytes + FORM_OVERHEAD_BYTES

    async def limited() -> AsyncGenerator[bytes, None]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _TooLarge
            yield chunk

    parser = MultiPartParser(
        request.headers,
        limited(),
        max_files=1,
        max_fields=len(FORM_FIELDS) + 8,
        max_part_size=FORM_OVERHEAD_BYTES,
    )
    try:
        form = await parser.parse()
    except _TooLarge:
        await _drain(request)
        raise _too_large(settings) from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client closed the upload") from None
    except MultiPartException as exc:
        raise ApiError(
            400, "malformed_multipart", f"malformed multipart body: {exc.message}"
        ) from None

    fields: dict[str, list[str]] = {}
    upload: UploadFile | None = None
    try:
        for key, value in form.multi_items():
            if key not in FORM_FIELDS:
                raise ApiError(
                    422,
                    "unknown_field",
                    f"unknown form field {key!r}; expected one of {', '.join(FORM_FIELDS)}",
                    field=key,
                )
            if key == "file":
                if not isinstance(value, UploadFile):
                    raise ApiError(
                        422,
                        "invalid_file",
                        "'file' must be a file part (e.g. curl -F file=@image.jpg)",
                        field="file",
                    )
                upload = value
            elif isinstance(value, str):
                fields.setdefault(key, []).append(value)
            else:
                raise ApiError(422, "invalid_option", f"{key!r} must be a text field", field=key)
        if upload is None:
            raise ApiError(
                422,
                "missing_file",
                "the image is missing: send it in the 'file' field",
                field="file",
            )
        data = await upload.read(settings.max_upload_bytes + 1)
    finally:
        await form.close()
    if len(data) > settings.max_upload_bytes:
        raise _too_large(settings)
    if not data:
        raise ApiError(422, "empty_file", "the uploaded file is empty", field="file")
    return Upload(data=data, fields=fields)


async def validated_upload(
    request: Request, settings: Settings
) -> tuple[Upload, JobOptions, imaging.ImageInfo]:
    """Body under the size limit (413), options (422), format from the bytes (415), pixel
    count from the header (422): all before anything is stored."""
    upload = await read_upload(request, settings)
    options = parse_options(upload.fields, settings)
    detected = imaging.sniff_format(upload.data)
    if detected is None or detected not in settings.allowed_format_set:
        allowed = ", ".join(sorted(settings.allowed_format_set))
        what = "not a recognised image" if detected is None else f"{detected} is not allowed"
        raise ApiError(
            415, "unsupported_format", f"{what}; allowed formats: {allowed}", field="file"
        )
    return upload, options, await _probe(upload.data, settings)


async def _probe(data: bytes, settings: Settings) -> imaging.ImageInfo:
    try:
        return await asyncio.to_thread(
            imaging.probe,
            data,
            allowed=settings.allowed_format_set,
            max_pixels=settings.max_pixels,
        )
    except imaging.UnsupportedFormatError as exc:
        raise ApiError(415, "unsupported_format", str(exc), field="file") from None
    except imaging.ImageTooLargeError as exc:
        raise ApiError(
            422, "image_too_large", f"{exc} (limit: {settings.max_pixels} pixels)", field="file"
        ) from None
    except imaging.ImagingError as exc:
        raise ApiError(
            422, "unreadable_image", f"the image header cannot be read: {exc}", field="file"
        ) from None


def parse_callback_url(fields: dict[str, list[str]], settings: Settings) -> str | None:
    """The completion webhook's URL (webhooks/targets.py), or None; 422 naming the field."""
    values = fields.get("callback_url")
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(422, "invalid_option", "'callback_url' given more than once",
                       field="callback_url")
    if not settings.webhook_secrets:
        raise ApiError(422, "webhooks_disabled", "completion webhooks are off on this service "
                       "(no THUMBNAIL_WEBHOOK_SECRETS): submit without callback_url",
                       field="callback_url")
    try:
        check_written_address(parse_callback_url_text(values[0]), settings.webhook_networks)
    except CallbackRefused as exc:
        raise ApiError(422, "invalid_callback_url", str(exc), field="callback_url") from None
    return values[0]


def parse_options(fields: dict[str, list[str]], settings: Settings) -> JobOptions:
    """Form fields -> JobOptions; every error names its field."""
    for key, values in fields.items():
        if key != "sizes" and len(values) > 1:
            raise ApiError(422, "invalid_option", f"{key!r} given more than once", field=key)
    sizes = _parse_sizes(fields.get("sizes", []), settings)
    fit = _parse_enum(fields, "fit", FitMode, FitMode.INSIDE)
    fmt = _parse_enum(fields, "format", OutputFormat, OutputFormat.AUTO)
    quality = QUALITY_DEFAULT
    if "quality" in fields:
        try:
            quality = parse_ascii_int(
                fields["quality"][0], minimum=QUALITY_MIN, maximum=QUALITY_MAX
            )
        except ValueError:
            raise ApiError(
                422, "invalid_option", "quality must be an integer from 1 to 100", field="quality"
            ) from None
    return JobOptions(sizes=sizes, fit=fit, format=fmt, quality=quality)


E = TypeVar("E", FitMode, OutputFormat)


def _parse_enum(fields: dict[str, list[str]], key: str, enum: type[E], default: E) -> E:
    if key not in fields:
        return default
    raw = fields[key][0].strip().lower()
    try:
        return enum(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ApiError(
            422, "invalid_option", f"{key} must be one of: {allowed}", field=key
        ) from None


def _parse_sizes(raw_values: list[str], settings: Settings) -> list[Size]:
    items = [item.strip() for raw in raw_values for item in raw.split(",") if item.strip()]
    if not raw_values:
        items = list(settings.presets)  # no sizes given: every configured preset
    if not items:
        raise ApiError(422, "invalid_option", "sizes must list at least one size", field="sizes")
    if len(items) > settings.max_sizes_per_job:
        raise ApiError(
            422,
            "invalid_option",
            f"at most {settings.max_sizes_per_job} sizes per job",
            field="sizes",
        )
    sizes: list[Size] = []
    for item in items:
        sizes.append(_parse_size(item, settings))
    names = [s.name for s in sizes]
    if len(set(names)) != len(names):
        raise ApiError(422, "invalid_option", f"duplicate size names in {names}", field="sizes")
    return sizes


def _parse_size(item: str, settings: Settings) -> Size:
    if item in settings.presets:
        preset = settings.presets[item]
        return Size(name=item, width=preset.width, height=preset.height)
    match = _SIZE_PATTERN.fullmatch(item)
    if match is None:
        presets = ", ".join(settings.presets) or "(none configured)"
        raise ApiError(
            422,
            "invalid_option",
            f"size {item!r} is neither a preset ({presets}) nor WIDTHxHEIGHT nor NAME=WIDTHxHEIGHT",
            field="sizes",
        )
    width, height = parse_ascii_int(match["w"]), parse_ascii_int(match["h"])
    name = match["name"] or f"{width}x{height}"
    if not re.fullmatch(PRESET_NAME_PATTERN, name):  # match() let "a\n" through ($)
        raise ApiError(
            422,
            "invalid_option",
            f"size name {name!r} must match {PRESET_NAME_PATTERN}",
            field="sizes",
        )
    limit = settings.max_output_dimension
    if not (1 <= width <= limit and 1 <= height <= limit):
        raise ApiError(
            422,
            "invalid_option",
            f"size {item!r}: width and height must be from 1 to {limit}",
            field="sizes",
        )
    return Size(name=name, width=width, height=height)


# --- the same rules, as the OpenAPI description of the form ------------------------------

_NAME = PRESET_NAME_PATTERN.removeprefix("^").removesuffix("$")


def number_pattern(high: int) -> str:
    """Regex (no anchors) for the whole numbers 1..high, without leading zeros."""

    def any_digits(count: int) -> str:
        return "" if count == 0 else "[0-9]" if count == 1 else f"[0-9]{{{count}}}"

    digits = str(high)
    alternatives = [f"[1-9]{any_digits(k)}" for k in range(len(digits) - 1)]  # shorter ones
    for i, digit in enumerate(digits):  # as long as `high`: below it from position i on
        low, top = (1 if i == 0 else 0), int(digit) - 1
        if top >= low:
            alternatives.append(f"{digits[:i]}[{low}-{top}]{any_digits(len(digits) - i - 1)}")
    alternatives.append(digits)
    return "(?:" + "|".join(alternatives) + ")"


def sizes_pattern(settings: Settings) -> str:
    """`sizes` as one field: 1 to max_sizes_per_job comma-separated items, each a preset,
    WIDTHxHEIGHT or NAME=WIDTHxHEIGHT with both sides in 1..max_output_dimension. (The
    parser also takes repeated fields, empty items, leading zeros and Unicode spaces; the
    pattern admits none of those, and nothing the parser refuses except duplicate names.)"""
    dim = number_pattern(settings.max_output_dimension)
    presets = [name for name in settings.presets if re.fullmatch(PRESET_NAME_PATTERN, name)]
    item = f"(?:{_NAME}=)?{dim}x{dim}"
    if presets:  # names are [A-Za-z0-9_-]: nothing to escape
        item = f"(?:{'|'.join(presets)}|{item})"
    return f"^ *{item} *(?:, *{item} *){{0,{settings.max_sizes_per_job - 1}}}$"


def form_schema(settings: Settings) -> dict[str, object]:
    """The multipart form exactly as read_upload and parse_options enforce it: only
    FORM_FIELDS, each once (sizes as one field), the values they accept."""
    presets = ", ".join(settings.presets) or "(none configured)"
    return {
        "type": "object",
        "required": ["file"],
        "additionalProperties": False,
        "properties": {
            "file": {
                "type": "string",
                "format": "binary",
                "description": "The image. Its format is detected from its bytes; allowed: "
                f"{', '.join(sorted(settings.allowed_format_set))}; at most "
                f"{settings.max_upload_bytes} bytes and {settings.max_pixels} pixels.",
            },
            "sizes": {
                "type": "string",
                "pattern": sizes_pattern(settings),
                "description": f"Comma-separated list of 1 to {settings.max_sizes_per_job} "
                f"distinct sizes: a preset ({presets}), WIDTHxHEIGHT or NAME=WIDTHxHEIGHT, "
                f"each side 1 to {settings.max_output_dimension}. Default: every preset.",
                "example": "small,800x600,banner=1200x400",
            },
            "fit": {
                "type": "string",
                "enum": [m.value for m in FitMode],
                "default": FitMode.INSIDE.value,
                "description": "inside: within the box, aspect kept, never upscaled; "
                "cover: exactly the box, centre crop; smart: exactly the box, "
                "attention crop.",
            },
            "format": {
                "type": "string",
                "enum": [m.value for m in OutputFormat],
                "default": OutputFormat.AUTO.value,
                "description": "auto keeps a web format close to the input.",
            },
            "quality": {
                "type": "integer",
                "minimum": QUALITY_MIN,
                "maximum": QUALITY_MAX,
                "default": QUALITY_DEFAULT,
                "description": "Written in the digits 0-9 only.",
            },
            "callback_url": {
                "type": "string",
                "format": "uri",
                "maxLength": MAX_URL_LENGTH,
                "pattern": "^https?://[^\\s@/?#]+([/?#]\\S*)?$",
                "description": "A completion webhook: when the job succeeds or fails, its "
                "document is POSTed here, signed (Webhook-Signature), retried with backoff "
                "(docs/api.md). Public addresses only, unless the service allows others.",
            },
        },
    }


def fingerprint(data: bytes, options: JobOptions, callback_url: str | None = None) -> str:
    """Identity of a submission, to detect an Idempotency-Key reused for another request."""
    digest = hashlib.sha256(data)
    digest.update(json.dumps(options.model_dump(mode="json"), sort_keys=True).encode())
    if callback_url is not None:  # (absent: the same fingerprint as before webhooks existed)
        digest.update(b"\0callback_url=" + callback_url.encode())
    return digest.hexdigest()
