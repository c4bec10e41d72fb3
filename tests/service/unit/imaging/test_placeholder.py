"""ThumbHash placeholders (imaging/placeholder.py) against the reference encoder.

The expected hashes come from the reference implementation (npm `thumbhash` 0.1.1, Evan
Wallace's `rgbaToThumbHash`, run once on the same generated pixels). The DCT here sums in
another order (separably, to be cheap), so a term on a rounding edge may land one step off:
AC terms compare within 1, the header (average colour, scales, flags, aspect) exactly. A flat
image has only float noise for AC terms, in the reference too: its header alone is compared.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import pyvips

from thumbnail_service.imaging.placeholder import (
    aspect_ratio,
    average_rgba,
    placeholder,
    thumbhash,
)

Pixel = Callable[[int, int], tuple[int, int, int, int]]


def pixels(w: int, h: int, colour: Pixel) -> bytes:
    return b"".join(bytes(colour(x, y)) for y in range(h) for x in range(w))


CASES: dict[str, tuple[int, int, Pixel, str]] = {
    "gradient": (32, 20, lambda x, y: (x * 8, y * 12, (x * y) % 256, 255),
                 "2xgOHJpgdndwiHiGeIb0lg/3iA=="),
    "flat red": (8, 8, lambda x, y: (255, 0, 0, 255), "1fsDBwBYiT9yeHiLh6eIiHeNktIIKY0A"),
    "alpha checker": (16, 24, lambda x, y: ((x * 16) % 256, 200, (y * 10) % 256,
                                             255 if (x + y) % 2 else 40),
                      "ZGmFOw4JcHB4eHdzfweHh3h4Bwd3h3A="),
}


def nibbles(data: bytes) -> list[int]:
    return [n for byte in data for n in (byte & 15, byte >> 4)]


@pytest.mark.parametrize("case", list(CASES))
def test_the_hash_is_the_reference_encoders(case: str) -> None:
    w, h, colour, expected_b64 = CASES[case]
    got, expected = thumbhash(w, h, pixels(w, h, colour)), base64.b64decode(expected_b64)
    assert len(got) == len(expected)
    header = 6 if expected[2] & 0x80 else 5  # with alpha, one more constant byte
    assert got[:header] == expected[:header]
    if case == "gradient":
        assert got == expected
    elif case != "flat red":
        assert all(abs(a - b) <= 1 for a, b in zip(nibbles(got[header:]),
                                                    nibbles(expected[header:]), strict=True))


def test_the_hash_carries_colour_alpha_and_aspect() -> None:
    flat_red = thumbhash(8, 8, pixels(8, 8, lambda x, y: (255, 0, 0, 255)))
    r, g, b, a = average_rgba(flat_red)
    assert r > 0.95 and g < 0.05 and b < 0.05 and a == 1.0
    wide = thumbhash(40, 10, pixels(40, 10, lambda x, y: (0, 0, 255, 128)))
    assert average_rgba(wide)[2] > 0.9 and average_rgba(wide)[3] < 1.0
    assert aspect_ratio(wide) > 2.4  # 4:1, as closely as the 5-term alpha grid says
    tall = thumbhash(10, 30, pixels(10, 30, lambda x, y: (0, 200, 0, 255)))
    assert aspect_ratio(tall) < 0.5


def test_a_placeholder_from_decoded_pixels() -> None:
    for bands in (3, 4):  # opaque, and with alpha
        colour = [200, 30, 30, 255][:bands]
        image = pyvips.Image.black(200, 100, bands=bands).linear(1, colour).cast("uchar")
        hashed = base64.b64decode(placeholder(image))
        r, g, b, _ = average_rgba(hashed)
        assert r > 0.7 and g < 0.25 and b < 0.25, bands
        assert 1.6 < aspect_ratio(hashed) < 2.5, bands
    grey = (pyvips.Image.black(50, 50) + 90).cast("uchar").copy(interpretation="b-w")
    for image in (grey, grey.bandjoin(255)):
        r, g, b, _ = average_rgba(base64.b64decode(placeholder(image)))
        assert abs(r - g) < 0.05 and abs(g - b) < 0.05


def test_every_render_carries_the_placeholder_on_its_smallest_size() -> None:
    from thumbnail_service.imaging import ImageFormat, RenderOptions, SizeSpec, render

    source = pyvips.Image.black(300, 200, bands=3).linear(1, [20, 20, 220]).cast("uchar")
    data = source.write_to_buffer(".png")
    for sizes in ((SizeSpec("big", 200, 200), SizeSpec("tiny", 32, 32)),
                  (SizeSpec("only", 64, 64),)):  # several sizes; the one streamed size
        made = render(data, RenderOptions(sizes), allowed=frozenset(ImageFormat),
                      max_pixels=10**8, timeout_seconds=10)
        hashed = {t.name: t.placeholder for t in made}
        smallest = sizes[-1].name
        assert hashed.pop(smallest) and set(hashed.values()) <= {None}
        assert average_rgba(base64.b64decode(made[-1].placeholder or ""))[2] > 0.7


def test_too_large_or_short_input_is_refused() -> None:
    with pytest.raises(ValueError, match="100x100"):
        thumbhash(101, 1, bytes(404))
    with pytest.raises(ValueError):
        thumbhash(2, 2, bytes(15))
