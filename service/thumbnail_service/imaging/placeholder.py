"""Placeholders: a ThumbHash (https://evanw.github.io/thumbhash/) of each succeeded job, a
~25-byte string a page shows blurred while the thumbnail loads (aspect ratio, average colour
and alpha included, unlike BlurHash).

The hash is computed while rendering, from the pixels of the job's smallest size (already
decoded and resized, held in memory once for both its encoder and this): shrinking those to
PIXELS on the long side and hashing costs a small fraction of the render (`bench.placeholder`,
docs/benchmarks.md). The DCT is the reference encoder's, computed separably (rows, then
columns), so pure Python stays cheap at this size.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence

import pyvips

from .encode import to_srgb

# Long side of the image the hash is computed from. The hash keeps at most 7 frequencies per
# axis, which 16 area-averaged samples carry; more pixels add cost (1.2 ms per job at 16,
# 2.2 ms at 32, measured), not detail. The reference encoder accepts up to 100.
PIXELS = 16


def placeholder(image: pyvips.Image) -> str:
    """The ThumbHash of a decoded image (a job's smallest size, in memory), base64."""
    scale = PIXELS / max(image.width, image.height)
    if scale < 1:
        image = image.resize(scale, kernel="linear")
    image = to_srgb(image).cast("uchar")
    # By band count (what our pipelines make): grey, grey+alpha, RGB, RGB+alpha.
    colour = image[0].bandjoin([image[0], image[0]]) if image.bands < 3 else image[0:3]
    alpha = image[image.bands - 1] if image.bands in (2, 4) else 255
    image = colour.bandjoin(alpha)
    rgba = bytes(image.write_to_memory())  # a cffi buffer: bytes index as int
    return base64.b64encode(thumbhash(image.width, image.height, rgba)).decode()


def _round(x: float) -> int:
    """JavaScript's Math.round (halves up), as the reference encoder rounds; Python's
    round() would round halves to even and give other hashes."""
    return math.floor(x + 0.5)


def _channel(values: Sequence[float], w: int, h: int, nx: int, ny: int,
             ) -> tuple[float, list[float], float]:
    """DC, normalised AC terms and their scale of one channel (the reference's order)."""
    dc, ac, scale = 0.0, [], 0.0
    for cy in range(ny):
        fy = [math.cos(math.pi / h * cy * (y + 0.5)) for y in range(h)]
        # Each row weighted by fy once per cy; every cx then needs only a pass over x.
        column = [sum(values[x + y * w] * fy[y] for y in range(h)) for x in range(w)]
        cx = 0
        while cx * ny < nx * (ny - cy):
            f = sum(column[x] * math.cos(math.pi / w * cx * (x + 0.5)) for x in range(w))
            f /= w * h
            if cx or cy:
                ac.append(f)
                scale = max(scale, abs(f))
            else:
                dc = f
            cx += 1
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return dc, ac, scale


def thumbhash(w: int, h: int, rgba: bytes) -> bytes:
    """The reference rgbaToThumbHash for an image of at most 100x100 RGBA pixels."""
    if not (0 < w <= 100 and 0 < h <= 100) or len(rgba) != w * h * 4:
        raise ValueError(f"{w}x{h} RGBA of {len(rgba)} bytes: at most 100x100 pixels")
    count = w * h
    avg_r = avg_g = avg_b = avg_a = 0.0
    for i in range(0, count * 4, 4):
        alpha = rgba[i + 3] / 255
        avg_r += alpha / 255 * rgba[i]
        avg_g += alpha / 255 * rgba[i + 1]
        avg_b += alpha / 255 * rgba[i + 2]
        avg_a += alpha
    if avg_a:
        avg_r, avg_g, avg_b = avg_r / avg_a, avg_g / avg_a, avg_b / avg_a
    has_alpha = avg_a < count
    l_limit = 5 if has_alpha else 7  # fewer luminance terms leave room for alpha
    lx = max(1, _round(l_limit * w / max(w, h)))
    ly = max(1, _round(l_limit * h / max(w, h)))
    lum, p, q, a = [], [], [], []
    for i in range(0, count * 4, 4):  # RGBA -> LPQA, composited over the average colour
        alpha = rgba[i + 3] / 255
        r = avg_r * (1 - alpha) + alpha / 255 * rgba[i]
        g = avg_g * (1 - alpha) + alpha / 255 * rgba[i + 1]
        b = avg_b * (1 - alpha) + alpha / 255 * rgba[i + 2]
        lum.append((r + g + b) / 3)
        p.append((r + g) / 2 - b)
        q.append(r - g)
        a.append(alpha)
    l_dc, l_ac, l_scale = _channel(lum, w, h, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _channel(p, w, h, 3, 3)
    q_dc, q_ac, q_scale = _channel(q, w, h, 3, 3)
    landscape = w > h
    header24 = (_round(63 * l_dc) | _round(31.5 + 31.5 * p_dc) << 6
                | _round(31.5 + 31.5 * q_dc) << 12 | _round(31 * l_scale) << 18
                | int(has_alpha) << 23)
    header16 = ((ly if landscape else lx) | _round(63 * p_scale) << 3
                | _round(63 * q_scale) << 9 | int(landscape) << 15)
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255,
           header16 >> 8]
    factors = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = _channel(a, w, h, 5, 5)
        out.append(_round(15 * a_dc) | _round(15 * a_scale) << 4)
        factors.append(a_ac)
    start = len(out)
    index = 0
    for ac in factors:
        for f in ac:
            if start + (index >> 1) == len(out):
                out.append(0)
            out[start + (index >> 1)] |= _round(15 * f) << ((index & 1) << 2)
            index += 1
    return bytes(out)


def average_rgba(hash_: bytes) -> tuple[float, float, float, float]:
    """The average colour a hash encodes, each 0-1 (the reference thumbHashToAverageRGBA)."""
    header = hash_[0] | hash_[1] << 8 | hash_[2] << 16
    lum = (header & 63) / 63
    p = ((header >> 6) & 63) / 31.5 - 1
    q = ((header >> 12) & 63) / 31.5 - 1
    alpha = (hash_[5] & 15) / 15 if header >> 23 else 1.0
    b = lum - 2 / 3 * p
    r = (3 * lum - b + q) / 2
    g = r - q
    return (min(1.0, max(0.0, r)), min(1.0, max(0.0, g)), min(1.0, max(0.0, b)), alpha)


def aspect_ratio(hash_: bytes) -> float:
    """The approximate width/height a hash encodes (thumbHashToApproximateAspectRatio)."""
    has_alpha, landscape = hash_[2] & 0x80, hash_[4] & 0x80
    lx = (5 if has_alpha else 7) if landscape else hash_[3] & 7
    ly = hash_[3] & 7 if landscape else (5 if has_alpha else 7)
    return lx / ly
