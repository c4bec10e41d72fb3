"""Header-only inspection: format gate, loader check and pixel limit before any decode."""

from __future__ import annotations

import pyvips

from .errors import CorruptImageError, ImageTooLargeError, UnsupportedFormatError
from .models import ImageFormat, ImageInfo
from .png import without_text_chunks
from .policy import ensure_policy, formats_for_loader
from .sniff import sniff_format

_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF values that rotate by 90 degrees


def probe(data: bytes, *, allowed: frozenset[ImageFormat], max_pixels: int) -> ImageInfo:
    """Read the header only (libvips loads lazily) and enforce format and pixel limits."""
    return open_header(loadable(data), allowed=allowed, max_pixels=max_pixels)[1]


def loadable(data: bytes) -> bytes:
    """The bytes to hand to libvips: without metadata it would inflate for nothing (PNG
    text chunks, see `png`). Cheap, and `data` itself when there is nothing to drop."""
    return without_text_chunks(data)


def open_header(
    data: bytes, *, allowed: frozenset[ImageFormat], max_pixels: int
) -> tuple[pyvips.Image, ImageInfo]:
    """`data` must come from `loadable`."""
    sniffed = sniff_format(data)
    if sniffed is None:
        raise UnsupportedFormatError("not a recognised image format")
    if sniffed not in allowed:
        raise UnsupportedFormatError(f"image format {sniffed} is not allowed")
    ensure_policy(allowed)
    try:
        header = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="error")
    except pyvips.Error as exc:
        raise CorruptImageError(f"cannot read {sniffed} header") from exc
    fmt = _confirm_format(header, sniffed)
    if fmt not in allowed:
        raise UnsupportedFormatError(f"image format {fmt} is not allowed")
    info = _info(header, fmt)
    # Decoded pixels = every page: checked here, before a single pixel is decoded.
    if info.width * info.height * info.pages > max_pixels:
        raise ImageTooLargeError(
            f"{info.width}x{info.height}x{info.pages} pages exceeds {max_pixels} pixels"
        )
    return header, info


def _confirm_format(header: pyvips.Image, sniffed: ImageFormat) -> ImageFormat:
    # libvips chose the loader by its own sniffing: it must agree with ours.
    loader = str(header.get("vips-loader"))
    codec = _optional_str(header, "heif-compression")
    candidates = formats_for_loader(loader, codec)
    if sniffed in candidates:
        return sniffed
    if len(candidates) == 1:  # e.g. an HEVC file whose brands claimed AVIF
        return next(iter(candidates))
    raise UnsupportedFormatError(f"loader {loader} does not match {sniffed} content")


def _info(header: pyvips.Image, fmt: ImageFormat) -> ImageInfo:
    orientation = _optional_int(header, "orientation") or 1
    if not 1 <= orientation <= 8:  # garbage EXIF: libvips' autorot ignores it too
        orientation = 1
    pages = max(1, _optional_int(header, "n-pages") or 1)
    width, height = header.width, header.height
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return ImageInfo(
        format=fmt,
        width=width,
        height=height,
        pages=pages,
        orientation=orientation,
        has_alpha=bool(header.hasalpha()),
        interlaced=bool(_optional_int(header, "interlaced")),
    )


def _optional_int(image: pyvips.Image, field: str) -> int | None:
    if not image.get_typeof(field):
        return None
    value = image.get(field)
    return value if isinstance(value, int) else None


def _optional_str(image: pyvips.Image, field: str) -> str | None:
    if not image.get_typeof(field):
        return None
    value = image.get(field)
    return value if isinstance(value, str) else None
