"""The per-job time limit fails a job that renders too long, at once and without retries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.service import images
from tests.service.stack import Stack
from tests.service.test_processing_real import submit, wait_finished

pytestmark = pytest.mark.services
LIMIT_SECONDS = 0.5
SERVICE_ENV = {"THUMBNAIL_JOB_TIMEOUT_SECONDS": str(LIMIT_SECONDS)}


@pytest.fixture(scope="module")
def slow_source() -> bytes:
    return images.encode(images.noise(3000, 2000), "jpg", Q=90)


def run_slow_job(stack: Stack, client: httpx.Client, source: bytes, **fields: str) -> Any:
    job = submit(client, source, fit="smart", **fields)
    done = wait_finished(client, job["id"], stack, timeout=90)
    assert done["status"] == "failed", done
    assert done["attempts"] == 1
    assert "time limit" in done["error"], done["error"]
    return done


def render_seconds(job: Any) -> float:
    took = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    return took.total_seconds()


def test_slow_render_is_stopped_at_the_time_limit(
    worker_stack: Stack, client: httpx.Client, slow_source: bytes
) -> None:
    # Uncut, these two WebP sizes take about 8 s of libvips work on one core.
    done = run_slow_job(
        worker_stack, client, slow_source, sizes="a=4000x4000,b=3900x3900", format="webp"
    )
    assert render_seconds(done) < LIMIT_SECONDS + 2.5, done


def test_slow_avif_encode_is_stopped_at_the_time_limit(
    worker_stack: Stack, client: httpx.Client, slow_source: bytes
) -> None:
    # libheif's AVIF encoder ignores libvips' kill flag (uncut: ~15 s): the worker's
    # isolated renderer SIGKILLs its child process at the limit plus the kill grace (1 s).
    done = run_slow_job(
        worker_stack, client, slow_source, sizes="a=1000x1000,b=600x600", format="avif"
    )
    assert render_seconds(done) < LIMIT_SECONDS + 2.5, done
    assert "renderer process was killed" in done["error"], done["error"]
