"""Pure size arithmetic for the decode-once plan (no libvips: property-testable)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .models import FitMode, SizeSpec

JPEG_SHRINKS = (8, 4, 2)  # libjpeg DCT scaling factors usable on load
_EPS = 1e-9


@dataclass(frozen=True)
class Plan:
    """How to decode once for every requested size.

    box_*: box (display orientation) the decoded image is shrunk to fit, no upscaling.
    need_*: smallest display size the decoded image must keep so that every size can
    be derived from it by downscaling (or by the upscale COVER/SMART asks for).
    """

    box_width: int
    box_height: int
    need_width: int
    need_height: int


def required_scale(src_w: int, src_h: int, spec: SizeSpec, fit: FitMode) -> float:
    """Scale from the source to the output of `spec` (INSIDE never upscales)."""
    sx, sy = spec.width / src_w, spec.height / src_h
    if fit is FitMode.INSIDE:
        return min(sx, sy, 1.0)
    return max(sx, sy)


def plan_decode(src_w: int, src_h: int, sizes: tuple[SizeSpec, ...], fit: FitMode) -> Plan:
    """Plan one shrink-on-load decode sized for the largest output."""
    scale, largest = max(
        ((required_scale(src_w, src_h, s, fit), i) for i, s in enumerate(sizes)),
    )
    if scale >= 1.0:
        return Plan(src_w, src_h, src_w, src_h)
    need_w = min(src_w, math.ceil(src_w * scale - _EPS))
    need_h = min(src_h, math.ceil(src_h * scale - _EPS))
    if fit is FitMode.INSIDE:
        # Same box as a direct thumbnail of the largest size: identical pixels for it.
        spec = sizes[largest]
        return Plan(spec.width, spec.height, need_w, need_h)
    return Plan(need_w, need_h, need_w, need_h)


def jpeg_shrink(stored_w: int, stored_h: int, need_w: int, need_h: int) -> int:
    """Largest DCT shrink that still leaves at least need_w x need_h (Pillow-draft style).

    libvips' own choice keeps a further 2x margin; measured PSNR of this tighter choice
    against a full decode is still > 49 dB, and it is up to 2x faster (docs/benchmarks.md).
    """
    # libvips sizes a shrunk JPEG by floor division (not libjpeg's ceil): 7 px / 8 fails.
    for k in JPEG_SHRINKS:
        if stored_w // k >= max(need_w, 1) and stored_h // k >= max(need_h, 1):
            return k
    return 1


@dataclass(frozen=True)
class CoverWindow:
    """COVER/SMART without building what is cut away: the output is the box-sized window at
    (left, top) of the source scaled uniformly by `scale`. Only that window is ever computed;
    in source pixels it is the region (left, top, box_w, box_h) / scale (`source_region`),
    so what gets scaled is exactly what is kept and an upscale never makes more pixels than
    the box (an 8000x10 strip to a 1024 px square scales 10x10 source pixels, not the whole
    strip to 819200x1024)."""

    scale: float
    left: float  # offsets inside the scaled source, in output pixels
    top: float

    def source_region(self, box_w: int, box_h: int) -> tuple[float, float, float, float]:
        """The window in source pixels: (x, y, width, height), fractional."""
        s = self.scale
        return self.left / s, self.top / s, box_w / s, box_h / s


def cover_scale(src_w: int, src_h: int, box_w: int, box_h: int) -> float:
    """Uniform scale at which the source just covers the box (COVER/SMART)."""
    return max(box_w / src_w, box_h / src_h)


def cover_window(
    src_w: int,
    src_h: int,
    box_w: int,
    box_h: int,
    centre: tuple[float, float] | None = None,
) -> CoverWindow:
    """The box-sized window of the covering scale, centred on `centre` (source pixels; the
    middle of the source by default) and moved inside the scaled source where needed."""
    scale = cover_scale(src_w, src_h, box_w, box_h)
    cx, cy = centre if centre is not None else (src_w / 2, src_h / 2)
    return CoverWindow(
        scale=scale,
        left=_clamp(cx * scale - box_w / 2, src_w * scale - box_w),
        top=_clamp(cy * scale - box_h / 2, src_h * scale - box_h),
    )


def crop_size(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The box's aspect ratio cut from the source, in whole source pixels (at least 1)."""
    scale = cover_scale(src_w, src_h, box_w, box_h)
    return (
        max(1, min(src_w, round(box_w / scale))),
        max(1, min(src_h, round(box_h / scale))),
    )


def _clamp(offset: float, room: float) -> float:
    # `room` (scaled size minus box) is >= 0 up to rounding: never below zero.
    return min(max(offset, 0.0), max(room, 0.0))


def fit_inside(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """Expected INSIDE result (reference for tests and callers; libvips does the work)."""
    scale = min(box_w / src_w, box_h / src_h, 1.0)
    return (
        max(1, min(box_w, round(src_w * scale))),
        max(1, min(box_h, round(src_h * scale))),
    )
