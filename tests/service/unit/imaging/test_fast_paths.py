"""The engine's fast paths (docs/bench/engine.md) must not change what render() promises."""

from __future__ import annotations

import time

import pytest
import pyvips

from thumbnail_service.imaging import (
    CorruptImageError,
    OutputFormat,
    ProcessingTimeoutError,
    RenderOptions,
    SizeSpec,
    render,
)
from thumbnail_service.imaging import deadline as deadline_module
from thumbnail_service.imaging.deadline import Deadline
from thumbnail_service.imaging.render import _scale_to

from .. import samples

ALL = samples.ALL_FORMATS
ONE = RenderOptions((SizeSpec("t", 256, 256),))


def _one(data: bytes, **options: object) -> bytes:
    opts = RenderOptions(**{"sizes": ONE.sizes, **options})  # type: ignore[arg-type]
    return render(data, opts, allowed=ALL, max_pixels=10**8, timeout_seconds=30)[0].data


@pytest.mark.parametrize("size", [(256, 171), (1024, 683), (97, 13)])
def test_scale_to_matches_thumbnail_image_pixel_for_pixel(size: tuple[int, int]) -> None:
    image = pyvips.Image.new_from_buffer(samples.jpeg(1600, 1067), "").copy_memory()
    width, height = size
    ours = _scale_to(image, width, height)
    reference = image.thumbnail_image(width, height=height, size="force", no_rotate=True)
    assert (ours.width, ours.height) == (reference.width, reference.height) == size
    assert (ours - reference).abs().max() == 0


def test_scale_to_keeps_thumbnail_for_alpha() -> None:
    image = samples.with_alpha(samples.canvas(300, 200)).copy_memory()
    scaled = _scale_to(image, 150, 100)
    assert (scaled.width, scaled.height, scaled.bands) == (150, 100, 4)


def test_single_size_render_matches_the_multi_size_path() -> None:
    data = samples.jpeg(1200, 800)
    streamed = samples.decode(_one(data, format=OutputFormat.PNG))
    sizes = (SizeSpec("t", 256, 256), SizeSpec("other", 64, 64))
    opts = RenderOptions(sizes, format=OutputFormat.PNG)
    derived = samples.decode(
        render(data, opts, allowed=ALL, max_pixels=10**8, timeout_seconds=30)[0].data
    )
    assert (streamed.width, streamed.height) == (derived.width, derived.height) == (256, 171)
    assert samples.psnr(streamed, derived) > 45


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_single_size_truncated_input_is_still_corrupt(suffix: str) -> None:
    data = samples.encode(samples.canvas(800, 600), suffix)
    with pytest.raises(CorruptImageError):
        _one(data[: len(data) // 2])


def test_single_size_avif_output_decodes() -> None:
    thumb = _one(samples.jpeg(640, 480), format=OutputFormat.AVIF)
    image = samples.decode(thumb)
    assert (image.width, image.height) == (256, 192)


def test_render_leaves_no_armed_deadline() -> None:
    _one(samples.jpeg(640, 480))
    assert deadline_module._WATCHDOG._heap == []  # disarmed: no pipeline kept alive


def test_a_closed_deadline_never_kills() -> None:
    image = pyvips.Image.gaussnoise(64, 64)
    with Deadline(0.05) as deadline:
        deadline.watch(image)
    time.sleep(0.1)
    assert not deadline.killed
    assert image.avg() > 0  # still computable: nobody set its kill flag


def test_watching_after_expiry_kills_at_once() -> None:
    deadline = Deadline(0)
    slow = pyvips.Image.gaussnoise(2000, 2000).gaussblur(10)
    deadline.watch(slow)
    assert deadline.killed
    with pytest.raises(ProcessingTimeoutError), deadline.guard(CorruptImageError, "blurring"):
        slow.copy_memory()
