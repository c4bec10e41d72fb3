"""Value types of the imaging engine (no libvips import: cheap for the API layer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

MAX_QUALITY = 100
DEFAULT_QUALITY = 80


class ImageFormat(StrEnum):
    """Input formats the engine can recognise (by magic bytes) and decode."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    GIF = "gif"
    TIFF = "tiff"
    HEIF = "heif"


class OutputFormat(StrEnum):
    """Encodings a thumbnail can be written in; AUTO is resolved per image."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    AVIF = "avif"
    AUTO = "auto"


class FitMode(StrEnum):
    """INSIDE: within the box, aspect kept, never upscaled.
    COVER: exactly WxH, centre crop (upscales small inputs to fill the box).
    SMART: exactly WxH, libvips attention crop (upscales like COVER)."""

    INSIDE = "inside"
    COVER = "cover"
    SMART = "smart"


# What AUTO picks, in this order, when the client accepts it (RenderOptions.accept): the
# smallest files at equal quality; both keep alpha.
NEGOTIABLE_FORMATS = (OutputFormat.AVIF, OutputFormat.WEBP)

CONTENT_TYPES: dict[OutputFormat, str] = {
    OutputFormat.JPEG: "image/jpeg",
    OutputFormat.PNG: "image/png",
    OutputFormat.WEBP: "image/webp",
    OutputFormat.AVIF: "image/avif",
}


@dataclass(frozen=True)
class SizeSpec:
    name: str
    width: int
    height: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("size name must not be empty")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"size {self.name!r}: width and height must be >= 1")


@dataclass(frozen=True)
class RenderOptions:
    sizes: tuple[SizeSpec, ...]
    fit: FitMode = FitMode.INSIDE
    format: OutputFormat = OutputFormat.AUTO
    quality: int = DEFAULT_QUALITY
    # What the client accepts (HTTP Accept, renditions/negotiation.py); empty: unknown. Only
    # read when format is AUTO: AVIF, else WebP, if accepted, else the source-following rule.
    accept: frozenset[OutputFormat] = frozenset()
    # The ThumbHash of the smallest size (a job's placeholder); renditions need none.
    placeholder: bool = True

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("at least one size is required")
        names = [s.name for s in self.sizes]
        if len(set(names)) != len(names):
            raise ValueError(f"size names must be unique: {names}")
        if not 1 <= self.quality <= MAX_QUALITY:
            raise ValueError("quality must be between 1 and 100")


@dataclass(frozen=True)
class ImageInfo:
    """Header facts. width/height are as displayed (EXIF orientation applied);
    the pixel count is the same either way.

    interlaced: progressive JPEG / Adam7 PNG / interlaced GIF. These cannot be streamed:
    a progressive 24 MP JPEG needs ~150 MB and 5x the time of a baseline one, so callers
    may want a lower pixel limit for them.
    """

    format: ImageFormat
    width: int
    height: int
    pages: int
    orientation: int = 1
    has_alpha: bool = False
    interlaced: bool = False


@dataclass(frozen=True)
class Thumbnail:
    name: str
    width: int
    height: int
    format: OutputFormat
    content_type: str
    data: bytes = field(repr=False)
    # On the smallest size only: the job's ThumbHash (imaging/placeholder.py), or None.
    placeholder: str | None = None
