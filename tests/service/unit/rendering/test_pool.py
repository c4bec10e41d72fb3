"""IsolatedRenderer: `render` in killable child processes (hard time limit, crash isolation)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import pyvips

from thumbnail_service.imaging import (
    CorruptImageError,
    FitMode,
    ImageFormat,
    ImageTooLargeError,
    ImagingError,
    OutputFormat,
    ProcessingTimeoutError,
    RenderOptions,
    SizeSpec,
    UnsupportedFormatError,
    render,
)
from thumbnail_service.rendering.pool import WATCHDOG_SLACK_SECONDS, IsolatedRenderer
from thumbnail_service.rendering.protocol import RendererCrashedError
from thumbnail_service.rendering.wire import child_error

from .. import samples

ALL = samples.ALL_FORMATS
LIMIT = 10**8
OPTIONS = RenderOptions((SizeSpec("large", 400, 400), SizeSpec("small", 64, 64)))
# Smart crop to AVIF: libheif's encoder ignores libvips' kill flag, ~3 s uncut on one core.
SLOW_AVIF = RenderOptions(
    (SizeSpec("a", 1000, 1000), SizeSpec("b", 600, 600)),
    fit=FitMode.SMART,
    format=OutputFormat.AVIF,
)
GRACE = 0.5


@pytest.fixture(scope="module")
def noise_jpeg() -> bytes:
    bands = [pyvips.Image.gaussnoise(2000, 1500, mean=128, sigma=60) for _ in range(3)]
    image = bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")
    return samples.encode(image, ".jpg", Q=90)


@pytest.fixture(scope="module")
def renderer() -> Iterator[IsolatedRenderer]:
    with IsolatedRenderer(2, kill_grace_seconds=GRACE) as pool:
        yield pool


@pytest.fixture
def single() -> Iterator[IsolatedRenderer]:
    with IsolatedRenderer(1, kill_grace_seconds=GRACE) as pool:
        yield pool


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_busy(pid: int, timeout: float = 10) -> None:
    """Until the child has used some CPU on the job (so a signal lands mid-render)."""

    def cpu_ticks() -> int:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    start, end = cpu_ticks(), time.monotonic() + timeout
    while cpu_ticks() - start < 20 and time.monotonic() < end:  # 0.2 s of CPU
        time.sleep(0.05)


def test_thumbnails_are_those_of_the_inline_render(renderer: IsolatedRenderer) -> None:
    data = samples.jpeg(1200, 800, orientation=6)
    expected = render(data, OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30)
    got = renderer.render(data, OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30)
    assert got == expected  # same names, sizes, formats, content types and bytes


@pytest.mark.parametrize(
    ("data", "allowed", "max_pixels", "timeout", "error"),
    [
        (b"not an image at all", ALL, LIMIT, 30, UnsupportedFormatError),
        (samples.jpeg(64, 64), frozenset({ImageFormat.PNG}), LIMIT, 30, UnsupportedFormatError),
        (samples.jpeg(640, 480), ALL, 1000, 30, ImageTooLargeError),
        (samples.jpeg(640, 480)[:3000], ALL, LIMIT, 30, CorruptImageError),
        (samples.jpeg(64, 64), ALL, LIMIT, 0, ProcessingTimeoutError),  # the child's own limit
    ],
    ids=["not-an-image", "not-allowed", "too-large", "truncated", "no-time-left"],
)
def test_child_errors_arrive_as_the_same_types_and_messages(
    renderer: IsolatedRenderer,
    data: bytes,
    allowed: frozenset[ImageFormat],
    max_pixels: int,
    timeout: float,
    error: type[ImagingError],
) -> None:
    with pytest.raises(error) as inline:
        render(data, OPTIONS, allowed=allowed, max_pixels=max_pixels, timeout_seconds=timeout)
    pids = renderer.pids
    with pytest.raises(error) as isolated:
        renderer.render(
            data, OPTIONS, allowed=allowed, max_pixels=max_pixels, timeout_seconds=timeout
        )
    assert type(isolated.value) is type(inline.value)
    assert str(isolated.value) == str(inline.value)
    assert renderer.pids == pids  # an ordinary error does not cost a child


def test_value_errors_and_unexpected_errors_are_mapped() -> None:
    value_error = child_error({"error": "ValueError", "message": "bad size"}, 0)
    assert type(value_error) is ValueError and str(value_error) == "bad size"
    other = child_error({"error": "unexpected", "type": "KeyError", "message": "'x'"}, 0)
    assert type(other) is RuntimeError and "KeyError" in str(other)  # transient for the worker


def test_slow_avif_encode_is_killed_at_the_limit_and_the_child_replaced(
    single: IsolatedRenderer, noise_jpeg: bytes
) -> None:
    [old_pid] = single.pids
    started = time.monotonic()
    with pytest.raises(ProcessingTimeoutError, match="renderer process was killed"):
        single.render(noise_jpeg, SLOW_AVIF, allowed=ALL, max_pixels=LIMIT, timeout_seconds=0.2)
    assert time.monotonic() - started < 0.2 + GRACE + 1.0
    assert not alive(old_pid)
    [new_pid] = single.pids
    assert new_pid != old_pid
    thumbs = single.render(
        samples.jpeg(800, 600), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30
    )
    assert [(t.width, t.height) for t in thumbs] == [(400, 300), (64, 48)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=lambda s: s.name)
def test_a_child_dying_mid_render_is_a_clear_crash(
    single: IsolatedRenderer, noise_jpeg: bytes, sig: signal.Signals
) -> None:
    [pid] = single.pids
    single.render(samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30)

    def kill_when_busy() -> None:
        wait_busy(pid)
        os.kill(pid, sig)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    started = time.monotonic()
    with pytest.raises(RendererCrashedError, match=f"the decoder crashed mid-job .*{sig.name}"):
        single.render(noise_jpeg, SLOW_AVIF, allowed=ALL, max_pixels=LIMIT, timeout_seconds=60)
    killer.join()
    assert time.monotonic() - started < 20
    assert single.pids != [pid]
    thumbs = single.render(
        samples.jpeg(300, 200), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30
    )
    assert [t.width for t in thumbs] == [300, 64]


def test_a_hung_child_is_killed_at_the_limit(single: IsolatedRenderer) -> None:
    [pid] = single.pids
    single.render(samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=9)
    os.kill(pid, signal.SIGSTOP)  # hangs before reading the job: nothing ever comes back
    started = time.monotonic()
    with pytest.raises(ProcessingTimeoutError, match="renderer process was killed"):
        single.render(
            samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=0.2
        )
    assert time.monotonic() - started < 0.2 + GRACE + 1.0
    assert not alive(pid)


def test_the_watchdog_kills_a_child_that_stalls_mid_reply(
    single: IsolatedRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `poll` bounds the wait for a frame, not reading one: pretend a frame has started
    # (poll says data is there) from a child that then hangs; only the watchdog can help.
    [pid] = single.pids
    single.render(samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=9)
    os.kill(pid, signal.SIGSTOP)
    monkeypatch.setattr(Connection, "poll", lambda self, timeout=0.0: True)
    started = time.monotonic()
    with pytest.raises(ProcessingTimeoutError, match="renderer process was killed"):
        single.render(
            samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=0.2
        )
    assert time.monotonic() - started < 0.2 + GRACE + WATCHDOG_SLACK_SECONDS + 1.0
    assert not alive(pid)
    monkeypatch.undo()
    thumbs = single.render(
        samples.jpeg(640, 480), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30
    )
    assert [t.width for t in thumbs] == [400, 64]


def test_a_child_that_died_while_idle_is_replaced_transparently(single: IsolatedRenderer) -> None:
    [pid] = single.pids
    single.render(samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30)
    os.kill(pid, signal.SIGKILL)
    thumbs = single.render(
        samples.jpeg(640, 480), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30
    )
    assert [t.width for t in thumbs] == [400, 64]
    assert single.pids != [pid]


def test_renders_run_concurrently_one_per_child(noise_jpeg: bytes) -> None:
    # Two hard kills at 0.2 + 0.5 s: about 0.7 s together if they run side by side, about
    # 1.4 s one after the other (wall-clock deadlines, so this does not depend on CPUs).
    with IsolatedRenderer(2, kill_grace_seconds=GRACE) as pool:
        pool.render(samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=9)

        def slow() -> str:
            try:
                pool.render(
                    noise_jpeg, SLOW_AVIF, allowed=ALL, max_pixels=LIMIT, timeout_seconds=0.2
                )
            except ProcessingTimeoutError:
                return "killed"
            return "finished"

        with ThreadPoolExecutor(max_workers=2) as threads:
            started = time.monotonic()
            results = list(threads.map(lambda _: slow(), range(2)))
            took = time.monotonic() - started
        assert results == ["killed", "killed"]
        assert took < 1.3, took


def test_a_killed_job_does_not_disturb_concurrent_ones(
    renderer: IsolatedRenderer, noise_jpeg: bytes
) -> None:
    small = [samples.jpeg(400 + 40 * i, 300) for i in range(6)]

    def slow() -> str:
        try:
            renderer.render(
                noise_jpeg, SLOW_AVIF, allowed=ALL, max_pixels=LIMIT, timeout_seconds=0.1
            )
        except ProcessingTimeoutError:
            return "timed out"
        return "finished"

    def normal(data: bytes) -> int:
        thumbs = renderer.render(data, OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30)
        return thumbs[0].width

    with ThreadPoolExecutor(max_workers=4) as threads:
        timed_out = threads.submit(slow)
        widths = list(threads.map(normal, small))
        assert timed_out.result() == "timed out"
    assert widths == [400] * 6
    assert len(renderer.pids) == 2


def test_memory_limit_applies_to_children_and_a_blown_limit_is_a_clean_failure() -> None:
    # Address space, not RSS: a child reserves ~300 MB for a tiny image (thread stacks, glibc
    # arenas of libvips' threads and the deadline watchdog), so 150 MB was flaky ("Error
    # creating thread"). A 10000x10000 cover thumbnail (the largest output LIMIT allows)
    # needs a 300 MB buffer on top of that: above 450 MB.
    limit = 450 * 1024 * 1024
    huge = RenderOptions((SizeSpec("huge", 10000, 10000),), fit=FitMode.COVER)
    with IsolatedRenderer(1, memory_limit_bytes=limit) as pool:
        [pid] = pool.pids
        pool.render(samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=9)
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert any(
            line.startswith("Max address space") and str(limit) in line
            for line in limits.splitlines()
        )
        # libvips reports a failed tracked allocation (an enlarging cover computes only the
        # box, so it is the JPEG encoder's whole-image buffer that fails: "Insufficient
        # memory"); GLib would abort the child instead (RendererCrashedError, an ImagingError
        # too). Either way: permanent, caller intact.
        with pytest.raises(ImagingError, match=r"out of memory|Insufficient memory|crashed"):
            pool.render(
                samples.jpeg(640, 480), huge, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30
            )
        thumbs = pool.render(
            samples.jpeg(640, 480), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30
        )
        assert [t.width for t in thumbs] == [400, 64]


def test_close_kills_the_children_and_refuses_new_work() -> None:
    pool = IsolatedRenderer(2)
    pids = pool.pids
    pool.render(samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=9)
    pool.close()
    pool.close()
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="closed"):
        pool.render(samples.jpeg(64, 64), OPTIONS, allowed=ALL, max_pixels=LIMIT, timeout_seconds=9)


def test_children_exit_when_their_parent_is_killed() -> None:
    # A SIGKILLed worker runs no cleanup: its children see their socket close and exit.
    script = (
        "import sys, time\n"
        "from thumbnail_service.rendering.pool import IsolatedRenderer\n"
        "pool = IsolatedRenderer(2)\n"
        "print(*pool.pids, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        time.sleep(0.5)  # let the children get to their first read
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)


def test_constructor_validates_its_arguments() -> None:
    with pytest.raises(ValueError):
        IsolatedRenderer(0)
    with pytest.raises(ValueError):
        IsolatedRenderer(1, kill_grace_seconds=0)
