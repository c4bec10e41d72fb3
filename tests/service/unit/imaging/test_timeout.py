from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import pyvips

from thumbnail_service.imaging import (
    CorruptImageError,
    ProcessingTimeoutError,
    RenderOptions,
    SizeSpec,
    render,
)
from thumbnail_service.imaging.deadline import Deadline

from .. import samples

ALL = samples.ALL_FORMATS
OPTIONS = RenderOptions((SizeSpec("t", 256, 256),))


def test_kill_stops_a_long_libvips_operation() -> None:
    # A 4000x4000 sigma-20 blur takes ~4 s on one core; without set_kill it would run out.
    slow = pyvips.Image.gaussnoise(4000, 4000).gaussblur(20)
    deadline = Deadline(0.2)
    deadline.watch(slow)
    started = time.perf_counter()
    with pytest.raises(ProcessingTimeoutError), deadline.guard(CorruptImageError, "blurring"):
        slow.copy_memory()
    assert deadline.killed
    assert time.perf_counter() - started < 1.5


def test_render_is_killed_mid_decode() -> None:
    big = samples.zero_png(8000, 8000, bit_depth=16, colour_type=2)  # 384 MB of pixels
    with pytest.raises(ProcessingTimeoutError, match="while decoding png"):
        render(big, OPTIONS, allowed=ALL, max_pixels=10**8, timeout_seconds=0.01)
    # The killed pipeline must not poison later work on the same bytes.
    thumbs = render(big, OPTIONS, allowed=ALL, max_pixels=10**8, timeout_seconds=60)
    assert (thumbs[0].width, thumbs[0].height) == (256, 256)


def test_a_killed_job_does_not_disturb_a_concurrent_one() -> None:
    big = samples.zero_png(8000, 8000, bit_depth=16, colour_type=2)
    small = samples.jpeg(1600, 1200)

    def slow_job() -> str:
        try:
            render(big, OPTIONS, allowed=ALL, max_pixels=10**8, timeout_seconds=0.02)
        except ProcessingTimeoutError:
            return "timed out"
        return "finished"

    def normal_job() -> list[int]:
        return [
            t.width
            for t in render(small, OPTIONS, allowed=ALL, max_pixels=10**8, timeout_seconds=60)
        ]

    with ThreadPoolExecutor(max_workers=2) as pool:
        slow = pool.submit(slow_job)
        normal = [pool.submit(normal_job) for _ in range(3)]
        assert slow.result() == "timed out"
        assert [f.result() for f in normal] == [[256]] * 3


def test_expired_budget_fails_before_decoding() -> None:
    with pytest.raises(ProcessingTimeoutError):
        render(samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=10**6, timeout_seconds=0)


def test_deadline_uses_its_clock() -> None:
    now = [100.0]
    deadline = Deadline(5, clock=lambda: now[0])
    deadline.check()
    now[0] = 105.0
    assert deadline.expired
    with pytest.raises(ProcessingTimeoutError):
        deadline.check()
