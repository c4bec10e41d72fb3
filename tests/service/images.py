"""Test images made with pyvips: solid colour halves make orientation checkable."""

from __future__ import annotations

import pyvips

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def solid(width: int, height: int, colour: tuple[int, int, int]) -> pyvips.Image:
    return (pyvips.Image.black(width, height, bands=3) + list(colour)).cast("uchar")


def two_halves(width: int, height: int) -> pyvips.Image:
    """Left half red, right half blue."""
    left = solid(width // 2, height, RED)
    right = solid(width - width // 2, height, BLUE)
    return left.join(right, "horizontal")


def encode(image: pyvips.Image, fmt: str, **options: object) -> bytes:
    return bytes(image.write_to_buffer(f".{fmt}", **options))


def jpeg_with_orientation(width: int, height: int, orientation: int) -> bytes:
    image = two_halves(width, height).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return encode(image, "jpg", Q=90)


def noise(width: int, height: int) -> pyvips.Image:
    """Incompressible content: slow to encode, good for 'kill it mid-job' tests."""
    bands = [
        pyvips.Image.gaussnoise(width, height, mean=128, sigma=60).cast("uchar") for _ in range(3)
    ]
    return bands[0].bandjoin(bands[1:])


def pixel(data: bytes, x: int, y: int) -> list[float]:
    image = pyvips.Image.new_from_buffer(data, "")
    return list(image(x, y))
