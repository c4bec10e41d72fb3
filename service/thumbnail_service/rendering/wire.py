"""What crosses the process boundary: a JSON header per message, raw frames for image bytes.

    parent -> child   {"options", "allowed", "max_pixels", "timeout_seconds"}, then the upload
    child -> parent   {"ready": true, "pid"} once at start; per job either
                      {"thumbnails": [{name, width, height, format, content_type, bytes}]}
                      followed by one payload frame per thumbnail, or
                      {"error": <class name> | "MemoryError" | "unexpected", "message", "type"}

Never pickle: a child that decoded hostile bytes could be compromised, and unpickling its
output would hand it the parent. So replies are parsed strictly.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..imaging import (
    CorruptImageError,
    FitMode,
    ImageTooLargeError,
    ImagingError,
    OutputFormat,
    ProcessingTimeoutError,
    RenderOptions,
    SizeSpec,
    Thumbnail,
    UnsupportedFormatError,
)
from .protocol import RendererCrashedError

# Exceptions that cross the process boundary as themselves (looked up by class name).
PASSED_THROUGH: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        UnsupportedFormatError,
        ImageTooLargeError,
        CorruptImageError,
        ProcessingTimeoutError,
        RendererCrashedError,
        ImagingError,
        ValueError,
    )
}
MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 30
MAX_MESSAGE_CHARS = 2000


def dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise RendererCrashedError("the decoder sent a malformed reply (not JSON)") from None
    if not isinstance(obj, dict):
        raise RendererCrashedError("the decoder sent a malformed reply (not an object)")
    return obj


def options_to_json(options: RenderOptions) -> dict[str, Any]:
    return {
        "sizes": [[s.name, s.width, s.height] for s in options.sizes],
        "fit": options.fit.value,
        "format": options.format.value,
        "quality": options.quality,
        "accept": sorted(f.value for f in options.accept),
        "placeholder": options.placeholder,
    }


def options_from_json(obj: dict[str, Any]) -> RenderOptions:
    return RenderOptions(
        sizes=tuple(SizeSpec(str(n), int(w), int(h)) for n, w, h in obj["sizes"]),
        fit=FitMode(obj["fit"]),
        format=OutputFormat(obj["format"]),
        quality=int(obj["quality"]),
        accept=frozenset(OutputFormat(f) for f in obj.get("accept", ())),
        placeholder=bool(obj.get("placeholder", True)),
    )


# A ThumbHash in base64: at most 25 bytes, so at most 36 characters.
PLACEHOLDER = re.compile(r"[A-Za-z0-9+/]{4,36}={0,2}")


def thumbnail_meta(thumb: Thumbnail) -> dict[str, Any]:
    """A thumbnail's description in a reply (its bytes follow as their own frame)."""
    return {
        "name": thumb.name,
        "width": thumb.width,
        "height": thumb.height,
        "format": thumb.format.value,
        "content_type": thumb.content_type,
        "bytes": len(thumb.data),
        "placeholder": thumb.placeholder,
    }


def thumbnail_metas(reply: dict[str, Any], options: RenderOptions) -> list[dict[str, Any]]:
    """The reply's thumbnail descriptions, checked strictly (the child is untrusted)."""
    metas = reply["thumbnails"]
    if not isinstance(metas, list):
        raise TypeError("thumbnails is not a list")
    if [m.get("name") if isinstance(m, dict) else None for m in metas] != [
        s.name for s in options.sizes
    ]:
        raise ValueError("thumbnail names differ from the requested sizes")
    for meta in metas:
        for key in ("width", "height", "bytes"):
            if type(meta[key]) is not int or meta[key] < 0:
                raise ValueError(f"bad {key}")
        if meta["bytes"] > MAX_PAYLOAD_BYTES:
            raise ValueError("payload too large")
        OutputFormat(meta["format"])
        if not isinstance(meta["content_type"], str):
            raise TypeError("bad content_type")
        hashed = meta.get("placeholder")
        if hashed is not None and not (isinstance(hashed, str)
                                       and PLACEHOLDER.fullmatch(hashed)):
            raise ValueError("bad placeholder")
    return metas


def passed_through_name(exc: Exception) -> str:
    """The name under which `exc` crosses (its nearest class in PASSED_THROUGH)."""
    return next(c.__name__ for c in type(exc).__mro__ if c.__name__ in PASSED_THROUGH)


def child_error(reply: dict[str, Any], memory_limit_bytes: int) -> Exception:
    """The exception an error reply stands for, raised in the parent."""
    name = str(reply.get("error"))
    message = str(reply.get("message", ""))[:MAX_MESSAGE_CHARS]
    if name == "MemoryError":
        limit = f" (limit {memory_limit_bytes} bytes)" if memory_limit_bytes else ""
        return ImageTooLargeError(f"rendering ran out of memory{limit}")
    cls = PASSED_THROUGH.get(name)
    if cls is None:
        return RuntimeError(f"renderer: {reply.get('type', 'error')}: {message}")
    return cls(message)
