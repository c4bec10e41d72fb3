"""The per-job time limit fails a job that renders too long, at once and without retries."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.service import images
from tests.service.stack import Stack
from tests.service.test_processing_real import submit, wait_finished

pytestmark = pytest.mark.services
SERVICE_ENV = {"THUMBNAIL_JOB_TIMEOUT_SECONDS": "0.5"}


def test_slow_render_fails_with_the_time_limit(worker_stack: Stack, client: httpx.Client) -> None:
    slow = images.encode(images.noise(3000, 2000), "jpg", Q=90)
    job = submit(client, slow, sizes="a=1000x1000,b=600x600", fit="smart", format="avif")
    done = wait_finished(client, job["id"], worker_stack, timeout=60)
    assert done["status"] == "failed", done
    assert done["attempts"] == 1
    assert "time limit" in done["error"], done["error"]
    # Killed near the limit, not left to finish (uncut, this render takes several seconds).
    took = datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["started_at"])
    assert took.total_seconds() < 3, took
