from __future__ import annotations

import math

import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thumbnail_service.imaging import FitMode, OutputFormat, RenderOptions, SizeSpec, render
from thumbnail_service.imaging.geometry import (
    JPEG_SHRINKS,
    cover_window,
    crop_size,
    jpeg_shrink,
    plan_decode,
    required_scale,
)

from .. import samples

dims = st.integers(min_value=1, max_value=6000)
specs = st.lists(
    st.builds(SizeSpec, name=st.text("abc", min_size=1, max_size=8), width=dims, height=dims),
    min_size=1,
    max_size=4,
    unique_by=lambda s: s.name,
).map(tuple)


@given(src_w=dims, src_h=dims, sizes=specs, fit=st.sampled_from(list(FitMode)))
def test_decode_plan_covers_every_size(
    src_w: int, src_h: int, sizes: tuple[SizeSpec, ...], fit: FitMode
) -> None:
    plan = plan_decode(src_w, src_h, sizes, fit)
    assert plan.need_width <= src_w and plan.need_height <= src_h
    for spec in sizes:
        scale = min(required_scale(src_w, src_h, spec, fit), 1.0)
        assert plan.need_width >= math.floor(src_w * scale)
        assert plan.need_height >= math.floor(src_h * scale)


@given(w=dims, h=dims, need_w=dims, need_h=dims)
def test_jpeg_shrink_is_the_largest_that_covers(w: int, h: int, need_w: int, need_h: int) -> None:
    need_w, need_h = min(need_w, w), min(need_h, h)
    k = jpeg_shrink(w, h, need_w, need_h)
    assert w // k >= need_w and h // k >= need_h  # libvips floors shrunk JPEG sizes
    for bigger in (s for s in JPEG_SHRINKS if s > k):
        assert w // bigger < need_w or h // bigger < need_h


@given(
    src_w=dims,
    src_h=dims,
    box_w=dims,
    box_h=dims,
    fx=st.floats(min_value=0, max_value=1),
    fy=st.floats(min_value=0, max_value=1),
)
def test_cover_window_is_the_box_inside_the_scaled_source(
    src_w: int, src_h: int, box_w: int, box_h: int, fx: float, fy: float
) -> None:
    """Crop before scale: the window lies inside the scaled source, the source region it
    names lies inside the source with exactly the box's aspect ratio, and what is scaled is
    never larger than the box."""
    window = cover_window(src_w, src_h, box_w, box_h, centre=(fx * src_w, fy * src_h))
    s = window.scale
    assert src_w * s >= box_w * (1 - 1e-9) and src_h * s >= box_h * (1 - 1e-9)  # covers
    assert 0 <= window.left <= max(0.0, src_w * s - box_w)
    assert 0 <= window.top <= max(0.0, src_h * s - box_h)
    x, y, w, h = window.source_region(box_w, box_h)
    assert x >= 0 and y >= 0
    assert x + w <= src_w * (1 + 1e-9) and y + h <= src_h * (1 + 1e-9)
    assert math.isclose(w * box_h, h * box_w, rel_tol=1e-9)  # the box's aspect, exactly
    assert w * s <= box_w * (1 + 1e-9) and h * s <= box_h * (1 + 1e-9)
    crop_w, crop_h = crop_size(src_w, src_h, box_w, box_h)
    assert 1 <= crop_w <= src_w and 1 <= crop_h <= src_h
    assert abs(crop_w - w) <= 0.5 + 1e-6 or crop_w == 1
    assert abs(crop_h - h) <= 0.5 + 1e-6 or crop_h == 1


def test_centred_window_of_an_extreme_strip() -> None:
    window = cover_window(8000, 10, 1024, 1024)
    assert window.scale == 102.4 and window.top == 0
    assert window.source_region(1024, 1024) == (3995.0, 0.0, 10.0, 10.0)


small = st.integers(min_value=1, max_value=300)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    src_w=small,
    src_h=small,
    boxes=st.lists(st.tuples(small, small), min_size=1, max_size=3),
    orientation=st.sampled_from([1, 6]),
)
def test_rendered_sizes_respect_the_fit(
    src_w: int, src_h: int, boxes: list[tuple[int, int]], orientation: int
) -> None:
    image = samples.canvas(src_w, src_h, marker=False).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    data = samples.encode(image, ".jpg", Q=70)
    if orientation == 6:
        src_w, src_h = src_h, src_w  # displayed size
    sizes = tuple(SizeSpec(f"s{i}", w, h) for i, (w, h) in enumerate(boxes))
    for fit in FitMode:
        options = RenderOptions(sizes, fit=fit, format=OutputFormat.PNG)
        thumbs = render(
            data, options, allowed=samples.ALL_FORMATS, max_pixels=10**6, timeout_seconds=30
        )
        for thumb, spec in zip(thumbs, sizes, strict=True):
            if fit is not FitMode.INSIDE:
                assert (thumb.width, thumb.height) == (spec.width, spec.height)
                continue
            assert thumb.width <= min(spec.width, src_w)
            assert thumb.height <= min(spec.height, src_h)
            # Aspect kept: within 1 px of the exact scaled size (never upscaled).
            scale = min(spec.width / src_w, spec.height / src_h, 1.0)
            assert abs(thumb.width - src_w * scale) <= 1
            assert abs(thumb.height - src_h * scale) <= 1
