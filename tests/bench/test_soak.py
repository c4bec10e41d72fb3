"""The pure parts of bench.soak: reading how the render pool saw a child die, retry delays,
fault windows, failure reasons and the decompression-bomb input."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import httpx

from bench import soak


def test_died_how_reads_the_render_pool_log_after_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "worker0.log"
    log.write_text("x ERROR 1 thumbnail_service.rendering.pool: renderer pid 42 died mid-job: "
                   "killed by SIGKILL\n")
    offset = log.stat().st_size
    assert soak.died_how(log, offset, 42, timeout=0.2) == "unnoticed"  # only before offset
    with log.open("a") as f:
        f.write("x WARNING 1 thumbnail_service.rendering.pool: renderer pid 42 died while idle "
                "(killed by SIGKILL)\nrenderer pid 420 died mid-job: ...\n")
    assert soak.died_how(log, offset, 42, timeout=1) == "while idle"
    assert soak.died_how(log, 0, 42, timeout=1) == "mid-job"


def test_retry_after_honours_the_header_within_bounds() -> None:
    def answer(value: str | None) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value} if value else {})

    assert soak.retry_after(None) == 1.0  # no answer at all
    assert soak.retry_after(answer("5")) == 5.0
    assert soak.retry_after(answer("3600")) == 5.0
    assert soak.retry_after(answer("0")) == 0.2
    assert soak.retry_after(answer("soon")) == 1.0
    assert soak.retry_after(answer(None)) == 1.0


def test_a_fault_window_runs_to_recovery_or_to_the_recovery_timeout() -> None:
    now = time.monotonic()
    fault = soak.Fault("postgresql-stop", 1, now, time.time(), [], ended=now + 10)
    assert fault.window() == (now, now + 10 + soak.RECOVERY_TIMEOUT_SECONDS
                              + soak.WINDOW_GRACE_SECONDS)
    fault.recovered = now + 10.5
    assert fault.window() == (now, now + 10.5 + soak.WINDOW_GRACE_SECONDS)


def test_failures_are_explained_by_the_input_or_a_killed_render_child() -> None:
    truncated = soak.Job("a", "truncated JPEG", None, 0.0, must_fail=True)
    good = soak.Job("b", "JPEG 2 MP, presets", None, 0.0)
    crash = ("the decoder crashed mid-job (killed by SIGKILL, e.g. by the OOM killer); "
             "the image was not processed")
    assert soak.classify_failure(truncated, "corrupt or truncated image: premature end") == (
        "expected: truncated input")
    assert soak.classify_failure(good, "corrupt or truncated image: x") == "unexplained"
    assert soak.classify_failure(good, crash) == "render child SIGKILLed (fault)"
    assert soak.classify_failure(good, "gave up after 5 attempts: minio unavailable") == (
        "unexplained: retries exhausted")
    assert soak.classify_failure(None, "the original image is missing from storage") == (
        "unexplained: original missing")


def test_the_bomb_input_declares_its_size_in_a_valid_png_header() -> None:
    data = soak.png_header_only(20000, 20000)
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (20000, 20000)
    assert len(data) < 2000
