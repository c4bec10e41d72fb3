from __future__ import annotations

import time

import pytest

from thumbnail_service.imaging import (
    CorruptImageError,
    ImageFormat,
    ImageTooLargeError,
    UnsupportedFormatError,
    probe,
)

from .. import samples

ALL = samples.ALL_FORMATS
LIMIT = 50_000_000


def test_reads_jpeg_header_in_display_orientation() -> None:
    info = probe(samples.jpeg(300, 200, orientation=6), allowed=ALL, max_pixels=LIMIT)
    assert (info.format, info.width, info.height, info.pages) == (ImageFormat.JPEG, 200, 300, 1)
    assert info.orientation == 6
    assert info.has_alpha is False


def test_reads_png_alpha_and_gif_pages() -> None:
    png = samples.encode(samples.with_alpha(samples.canvas(40, 30)), ".png")
    info = probe(png, allowed=ALL, max_pixels=LIMIT)
    assert (info.format, info.width, info.height, info.has_alpha) == (ImageFormat.PNG, 40, 30, True)
    gif = probe(samples.animated_gif(20, 10, frames=3), allowed=ALL, max_pixels=LIMIT)
    assert (gif.format, gif.width, gif.height, gif.pages) == (ImageFormat.GIF, 20, 10, 3)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".gif"])
def test_reports_interlaced_encodings(suffix: str) -> None:
    image = samples.canvas(64, 48)
    plain = probe(samples.encode(image, suffix), allowed=ALL, max_pixels=LIMIT)
    interlaced = probe(samples.encode(image, suffix, interlace=True), allowed=ALL, max_pixels=LIMIT)
    assert (plain.interlaced, interlaced.interlaced) == (False, True)


def test_avif_is_told_apart_from_heif() -> None:
    avif = samples.encode(samples.canvas(32, 24), ".avif")
    assert probe(avif, allowed=ALL, max_pixels=LIMIT).format is ImageFormat.AVIF
    with pytest.raises(UnsupportedFormatError):
        probe(avif, allowed=frozenset({ImageFormat.HEIF}), max_pixels=LIMIT)


def test_decompression_bomb_is_refused_from_the_header_alone() -> None:
    bomb = samples.zero_png(20_000, 20_000)  # 400 MP declared, ~50 KB on disk
    assert len(bomb) < 400_000
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="20000x20000"):
        probe(bomb, allowed=ALL, max_pixels=LIMIT)
    # Decoding 400 MP takes seconds; a header read takes microseconds.
    assert time.perf_counter() - started < 0.5


def test_pixel_limit_boundary_counts_every_page() -> None:
    gif = samples.animated_gif(20, 10, frames=3)  # 600 decoded pixels
    assert probe(gif, allowed=ALL, max_pixels=600).pages == 3
    with pytest.raises(ImageTooLargeError):
        probe(gif, allowed=ALL, max_pixels=599)


@pytest.mark.parametrize(
    "data", [samples.noise_bytes(), samples.SVG, b""], ids=["noise", "svg", "empty"]
)
def test_non_images_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormatError):
        probe(data, allowed=ALL, max_pixels=LIMIT)


def test_format_outside_the_allowed_set_is_unsupported() -> None:
    png = samples.encode(samples.canvas(8, 8), ".png")
    with pytest.raises(UnsupportedFormatError, match="png"):
        probe(png, allowed=frozenset({ImageFormat.JPEG}), max_pixels=LIMIT)


def test_broken_header_is_corrupt() -> None:
    data = samples.jpeg(64, 48)
    with pytest.raises(CorruptImageError):
        probe(data[:40], allowed=ALL, max_pixels=LIMIT)
    with pytest.raises(CorruptImageError):
        probe(b"GIF89a" + bytes(10), allowed=ALL, max_pixels=LIMIT)
