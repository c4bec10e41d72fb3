"""Pure image engine: bytes + options -> thumbnails (no queue, storage or database).

Decisions callers can rely on:
- INSIDE never upscales; COVER and SMART always return exactly WxH (upscaling if needed;
  an enlargement crops first and computes only the box's pixels, see geometry.CoverWindow).
- EXIF orientation is applied, output is 8-bit sRGB, all metadata (EXIF/XMP/IPTC/ICC) is
  stripped. Multi-page inputs (GIF, TIFF, HEIF) render their first page.
- AUTO output: AVIF, else WebP, when RenderOptions.accept names it (renditions negotiate
  it from HTTP Accept); otherwise JPEG->jpeg, PNG->png, WebP->webp, GIF->png,
  others->jpeg; alpha never becomes JPEG (png instead). An explicit JPEG flattens alpha
  onto white.
- max_pixels applies to width x height x pages from the header, before any decode, and to
  each requested output size.
- Importing does not touch libvips' global state. The first probe/render blocks untrusted
  and non-allowed loaders and disables the libvips operation cache (see `policy`).
- `render` stops libvips through its kill flag, which some encoders ignore (libheif's AVIF
  encoder). `thumbnail_service.rendering` runs the same `render` in killable child
  processes: a hard time limit, and decoder crashes stay out of the caller.
"""

from .errors import (
    CorruptImageError,
    ImageTooLargeError,
    ImagingError,
    ProcessingTimeoutError,
    UnsupportedFormatError,
)
from .info import libvips_version, supported_formats
from .models import (
    FitMode,
    ImageFormat,
    ImageInfo,
    OutputFormat,
    RenderOptions,
    SizeSpec,
    Thumbnail,
)
from .probe import probe
from .render import render
from .sniff import sniff_format

__all__ = [
    "CorruptImageError",
    "FitMode",
    "ImageFormat",
    "ImageInfo",
    "ImageTooLargeError",
    "ImagingError",
    "OutputFormat",
    "ProcessingTimeoutError",
    "RenderOptions",
    "SizeSpec",
    "Thumbnail",
    "UnsupportedFormatError",
    "libvips_version",
    "probe",
    "render",
    "sniff_format",
    "supported_formats",
]
