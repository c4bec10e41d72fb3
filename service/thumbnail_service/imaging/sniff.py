"""Format detection from magic bytes only: cheap, libvips-free, needs ~64 bytes."""

from __future__ import annotations

from .models import ImageFormat

SNIFF_BYTES = 64

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)


def sniff_format(data: bytes) -> ImageFormat | None:
    """Return the format announced by the leading bytes, or None if unknown."""
    head = bytes(data[:SNIFF_BYTES])
    if head.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageFormat.PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageFormat.GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    if head[:4] in _TIFF_MAGICS:
        return ImageFormat.TIFF
    return _sniff_isobmff(head)


def _sniff_isobmff(head: bytes) -> ImageFormat | None:
    # ISO-BMFF 'ftyp' box: size(4) 'ftyp' major(4) minor-version(4) compatible brands(4 each).
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    box_end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, box_end - 3, 4)]
    # AVIF files often carry mif1 too, so check the AV1 brands first.
    if any(b in _AVIF_BRANDS for b in brands):
        return ImageFormat.AVIF
    if any(b in _HEIF_BRANDS for b in brands):
        return ImageFormat.HEIF
    return None
