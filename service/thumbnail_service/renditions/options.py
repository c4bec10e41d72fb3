"""The options segment of a rendition URL, parsed and bounded like a job's options.

Syntax: comma-separated `name:value` pairs, each name at most once, in any order:

    w:WIDTH, h:HEIGHT   1..max_output_dimension; with fit:inside one of them may be left out
    preset:NAME         a configured preset's width and height (instead of w and h)
    fit:inside|cover|smart   default inside (never upscales)
    f:auto|jpeg|png|webp|avif  default auto: negotiated from Accept (negotiation.py)
    q:1..100            default 80

In presets-only mode (THUMBNAIL_RENDITION_PRESETS_ONLY) only preset, fit and f are allowed:
a bounded set of renditions per original, so nobody can fill the cache with arbitrary sizes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..imaging import FitMode, OutputFormat
from ..imaging.models import DEFAULT_QUALITY, MAX_QUALITY

E = TypeVar("E", FitMode, OutputFormat)
_NAMES = ("w", "h", "preset", "fit", "f", "q")
_PRESETS_ONLY_NAMES = frozenset({"preset", "fit", "f"})


class RenditionOptionError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class RenditionSpec:
    width: int
    height: int
    fit: FitMode = FitMode.INSIDE
    format: OutputFormat = OutputFormat.AUTO
    quality: int = DEFAULT_QUALITY

    def canonical(self) -> str:
        """One spelling per rendition (the cache key's part): order and presets resolved."""
        return f"w:{self.width},h:{self.height},fit:{self.fit},f:{self.format},q:{self.quality}"


def parse_options(
    segment: str,
    *,
    presets: Mapping[str, tuple[int, int]],
    presets_only: bool,
    max_dimension: int,
) -> RenditionSpec:
    pairs = _pairs(segment, presets_only)
    if "preset" in pairs:
        if "w" in pairs or "h" in pairs:
            raise RenditionOptionError("preset", "give either preset or w/h, not both")
        name = pairs["preset"]
        if name not in presets:
            raise RenditionOptionError(
                "preset", f"unknown preset {name!r}; configured: {', '.join(sorted(presets))}"
            )
        width, height = presets[name]
    elif presets_only:
        raise RenditionOptionError("preset", "this service renders presets only: give preset:NAME")
    else:
        width, height = (_dimension(pairs, n, max_dimension) for n in ("w", "h"))
    fit = _choice(pairs, "fit", FitMode, FitMode.INSIDE)
    if not (width and height):
        if fit is not FitMode.INSIDE or not (width or height):
            raise RenditionOptionError(
                "w", "give w and h (fit:inside alone may leave one out)")
        # Within max_dimension on the side left out: inside keeps the aspect ratio.
        width, height = width or max_dimension, height or max_dimension
    quality = DEFAULT_QUALITY
    if "q" in pairs:
        quality = _number(pairs, "q", 1, MAX_QUALITY)
    return RenditionSpec(width, height, fit, _choice(pairs, "f", OutputFormat, OutputFormat.AUTO),
                         quality)


def _pairs(segment: str, presets_only: bool) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in segment.split(","):
        name, colon, value = part.partition(":")
        if not colon or not value:
            raise RenditionOptionError(
                "options", f"{part!r} is not name:value (e.g. w:300,h:200,fit:cover)")
        if name not in _NAMES:
            raise RenditionOptionError(
                "options", f"unknown option {name!r}; known: {', '.join(_NAMES)}")
        if presets_only and name not in _PRESETS_ONLY_NAMES:
            raise RenditionOptionError(
                name, f"option {name!r} is not allowed: this service renders presets only "
                f"({', '.join(sorted(_PRESETS_ONLY_NAMES))})")
        if name in pairs:
            raise RenditionOptionError(name, f"option {name!r} is given twice")
        pairs[name] = value
    return pairs


def _number(pairs: Mapping[str, str], name: str, low: int, high: int) -> int:
    text = pairs[name]
    if not (text.isascii() and text.isdigit() and len(text) <= 6 and low <= int(text) <= high):
        raise RenditionOptionError(name, f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _dimension(pairs: Mapping[str, str], name: str, max_dimension: int) -> int:
    return _number(pairs, name, 1, max_dimension) if name in pairs else 0


def _choice(
    pairs: Mapping[str, str], name: str, kind: type[E], default: E
) -> E:
    if name not in pairs:
        return default
    try:
        return kind(pairs[name])
    except ValueError:
        raise RenditionOptionError(
            name, f"{name} must be one of {', '.join(m.value for m in kind)}") from None
