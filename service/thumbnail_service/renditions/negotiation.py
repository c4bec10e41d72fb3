"""`f:auto` negotiated from the request's Accept header.

Browsers name the modern formats they decode (`image/avif,image/webp,*/*`); `*/*` alone does
not promise either. The rendition depends only on which negotiable format wins, so that
(not the whole header) is what a stored rendition is keyed by, and responses to `f:auto`
say `Vary: Accept`.
"""

from __future__ import annotations

from ..imaging import OutputFormat
from ..imaging.models import CONTENT_TYPES, NEGOTIABLE_FORMATS

_BY_MEDIA_TYPE = {CONTENT_TYPES[f]: f for f in NEGOTIABLE_FORMATS}


def accepted(header: str | None) -> frozenset[OutputFormat]:
    """The negotiable formats the header names with a non-zero q."""
    found: set[OutputFormat] = set()
    for media_range in (header or "").split(","):
        media_type, *params = (p.strip() for p in media_range.split(";"))
        fmt = _BY_MEDIA_TYPE.get(media_type.lower())
        if fmt is not None and not any(_is_zero_q(p) for p in params):
            found.add(fmt)
    return frozenset(found)


def decisive(requested: OutputFormat, header: str | None) -> frozenset[OutputFormat]:
    """What the render needs to know of Accept: the one negotiable format AUTO will pick
    (AVIF before WebP), or nothing (explicit format, or neither accepted)."""
    if requested is not OutputFormat.AUTO:
        return frozenset()
    offered = accepted(header)
    return next((frozenset({f}) for f in NEGOTIABLE_FORMATS if f in offered), frozenset())


def _is_zero_q(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return False
    try:
        return float(value) == 0
    except ValueError:
        return False
