"""Pure image engine: bytes + options -> thumbnails (no queue, storage or database).

Importing this package does not touch libvips' global state; the loader allow-list and
cache settings are installed on first `probe`/`render` (see `policy`).
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
