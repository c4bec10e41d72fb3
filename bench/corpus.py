"""Reproducible photographic benchmark inputs (same bytes for the same libvips build).

Content: a real photograph shipped in scikit-image's wheel (coffee.png, 600x400, public
domain), upscaled with Lanczos to the wanted size, then given the fine detail a camera
photo has at that size and an upscale lacks: 1/f ("fractal") luminance texture from
seeded noise at five octaves plus faint sensor grain. Without skimage the same texture is
laid over a smooth procedural scene instead (`source()` says which). The encoded JPEGs land
at ~1.5-2.5 bits/pixel at Q85, like camera JPEGs, so decoders and entropy coders do real work.

    photo_jpeg(12)                  12 MP baseline JPEG, Q85, 4:2:0
    photo_jpeg(12, progressive=True)
    photo_png(2), photo_webp(2)
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pyvips

ASPECT = 3 / 2  # the shipped photo's (and most cameras') aspect ratio
SEED = 20261127
OCTAVES = (1, 2, 4, 8, 16)  # noise cell sizes in pixels; amplitude grows with the cell


def dimensions(megapixels: float) -> tuple[int, int]:
    """Width x height of a 3:2 image of about `megapixels` (even numbers)."""
    height = math.sqrt(megapixels * 1e6 / ASPECT)
    return 2 * round(height * ASPECT / 2), 2 * round(height / 2)


def source() -> str:
    """What the base layer is (recorded with the results)."""
    return "skimage coffee.png + 1/f texture" if _shipped_photo() else "procedural + 1/f texture"


def _shipped_photo() -> Path | None:
    try:
        import skimage
    except ImportError:
        return None
    path = Path(skimage.__file__).parent / "data" / "coffee.png"
    return path if path.is_file() else None


def _base(width: int, height: int) -> pyvips.Image:
    path = _shipped_photo()
    if path is not None:
        photo = pyvips.Image.new_from_file(str(path), access="sequential")
        return photo.resize(width / photo.width, vscale=height / photo.height, kernel="lanczos3")
    # Fallback: smooth sky-to-ground scene with large soft shapes (still not flat).
    xyz = pyvips.Image.xyz(width, height)
    blobs = _noise(width, height, max(width, height) // 6, SEED + 99) * 60
    r = xyz[1] * (120 / height) + 60 + blobs
    g = xyz[1] * (90 / height) + 80 + blobs * 0.8
    b = 200 - xyz[1] * (120 / height) + blobs * 0.5
    return r.bandjoin([g, b])


def _noise(width: int, height: int, cell: int, seed: int) -> pyvips.Image:
    """Unit-variance noise with features about `cell` pixels across (smooth upsampling)."""
    small = pyvips.Image.gaussnoise(
        max(2, math.ceil(width / cell)) + 1,
        max(2, math.ceil(height / cell)) + 1,
        mean=0,
        sigma=1,
        seed=seed,
    )
    if cell == 1:
        return small.crop(0, 0, width, height)
    return small.resize(cell, kernel="cubic").crop(0, 0, width, height)


@cache
def photo(megapixels: float) -> pyvips.Image:
    """The decoded 8-bit sRGB photo, in memory (cached per size)."""
    width, height = dimensions(megapixels)
    texture = sum(
        (_noise(width, height, cell, SEED + cell) * (0.9 * cell**0.5) for cell in OCTAVES),
        start=pyvips.Image.black(width, height),
    )
    base = _base(width, height)
    # Texture modulates brightness (multiplicative, like surface detail), grain is additive.
    lit = base * (1 + texture / 70) + _noise(width, height, 1, SEED) * 4
    image = lit.cast("uchar").copy(interpretation="srgb")
    return image.copy_memory()


@cache
def photo_jpeg(megapixels: float, progressive: bool = False, quality: int = 85) -> bytes:
    data: bytes = photo(megapixels).jpegsave_buffer(
        Q=quality, interlace=progressive, subsample_mode="on", optimize_coding=True, keep="none"
    )
    return data


@cache
def photo_png(megapixels: float) -> bytes:
    data: bytes = photo(megapixels).pngsave_buffer(compression=6, keep="none")
    return data


@cache
def photo_webp(megapixels: float, quality: int = 85) -> bytes:
    data: bytes = photo(megapixels).webpsave_buffer(Q=quality, keep="none")
    return data


def main() -> None:
    """Write the inputs to a folder for a look: python -m bench.corpus OUT_DIR."""
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "corpus-preview")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in (
        ("photo-2mp.jpg", photo_jpeg(2)),
        ("photo-12mp.jpg", photo_jpeg(12)),
        ("photo-12mp-progressive.jpg", photo_jpeg(12, progressive=True)),
        ("photo-2mp.png", photo_png(2)),
        ("photo-2mp.webp", photo_webp(2)),
    ):
        (out / name).write_bytes(data)
        print(f"{out / name}: {len(data) / 1e6:.2f} MB")
    print(f"content: {source()}")


if __name__ == "__main__":
    main()
