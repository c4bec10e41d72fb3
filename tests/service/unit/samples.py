"""Real test images generated with pyvips (no binary fixtures in the repo)."""

from __future__ import annotations

import math
import random
import struct
import zlib
from pathlib import Path

import pyvips

from thumbnail_service.imaging import ImageFormat
from thumbnail_service.imaging.policy import ensure_policy

ALL_FORMATS = frozenset(ImageFormat)
RED = [255, 0, 0]
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="80">'
    b'<rect width="100" height="80" fill="red"/></svg>'
)


def canvas(width: int, height: int, *, marker: bool = True) -> pyvips.Image:
    """Opaque sRGB gradient; a red block marks the stored top-left corner."""
    xyz = pyvips.Image.xyz(width, height)
    r = xyz[0] * 200 / max(width, 1)
    g = xyz[1] * 200 / max(height, 1)
    image = r.bandjoin([g, (r + g) / 2]).cast("uchar").copy(interpretation="srgb")
    if marker:
        size = max(1, min(width, height) // 4)
        block = (pyvips.Image.black(size, size, bands=3) + RED).cast("uchar")
        image = image.insert(block, 0, 0).copy(interpretation="srgb")
    return image


def with_alpha(image: pyvips.Image, alpha: int = 128) -> pyvips.Image:
    return image.bandjoin(alpha).copy(interpretation="srgb")


def jpeg(width: int, height: int, *, orientation: int = 0, quality: int = 90) -> bytes:
    image = canvas(width, height).copy()
    if orientation:
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    data: bytes = image.write_to_buffer(".jpg", Q=quality)  # keeps EXIF (orientation)
    return data


def encode(image: pyvips.Image, suffix: str, **kwargs: object) -> bytes:
    data: bytes = image.write_to_buffer(suffix, **kwargs)
    return data


def animated_gif(width: int, height: int, frames: int) -> bytes:
    base = canvas(width, height, marker=False)
    strip = pyvips.Image.arrayjoin([(base + 20 * i).cast("uchar") for i in range(frames)], across=1)
    strip = strip.copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    return encode(strip, ".gif")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def zero_png(width: int, height: int, *, bit_depth: int = 1, colour_type: int = 0) -> bytes:
    """A valid, highly compressible PNG: a 1-bit 20000x20000 one is a ~50 KB bomb."""
    channels = {0: 1, 2: 3}[colour_type]
    row = b"\0" * (1 + (width * channels * bit_depth + 7) // 8)
    packer = zlib.compressobj(1)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def vips_native(tmp_path: Path) -> bytes:
    path = tmp_path / "image.v"  # libvips' own format only saves to files
    canvas(20, 10).write_to_file(str(path))
    return path.read_bytes()


def noise_bytes(size: int = 4096) -> bytes:
    return random.Random(1234).randbytes(size)


def decode(data: bytes) -> pyvips.Image:
    """Decode an engine output fully (unblocking every allowed loader first)."""
    ensure_policy(ALL_FORMATS)
    return pyvips.Image.new_from_buffer(data, "", fail_on="error").copy_memory()


def psnr(a: pyvips.Image, b: pyvips.Image) -> float:
    mse = float(((a.cast("float") - b.cast("float")) ** 2).avg())
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)
