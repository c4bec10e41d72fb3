"""The worker renders in child processes: a decoder that crashes fails its job clearly and
permanently, and the worker (and its next job) carry on."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.service import images
from tests.service.stack import Stack, wait_for
from tests.service.test_processing_real import submit, wait_finished
from thumbnail_service.rendering.process import CHILD_MODULE

pytestmark = pytest.mark.services
SERVICE_ENV = {"THUMBNAIL_JOB_TIMEOUT_SECONDS": "60", "THUMBNAIL_WORKER_THREADS": "2"}
RENDERER_MARK = CHILD_MODULE


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid]
        found += children
        frontier += children
    return found


def renderers(stack: Stack) -> list[int]:
    worker = stack.workers[0].proc
    assert worker is not None
    pids = []
    for pid in descendants(worker.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if RENDERER_MARK.encode() in cmdline:
            pids.append(pid)
    return sorted(pids)


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def test_a_crashing_decoder_fails_the_job_and_the_worker_carries_on(
    worker_stack: Stack, client: httpx.Client
) -> None:
    # One render child per worker thread, started when the worker takes its first job.
    first = submit(client, images.encode(images.two_halves(64, 48), "png"), sizes="t=32x32")
    assert wait_finished(client, first["id"], worker_stack)["status"] == "succeeded"
    before = wait_for(
        lambda: (p := renderers(worker_stack)) and len(p) == 2 and p,
        timeout=10,
        what="two render child processes",
    )

    slow = images.encode(images.noise(2000, 1500), "jpg", Q=90)  # AVIF encode: seconds
    job = submit(client, slow, fit="smart", sizes="a=1000x1000,b=600x600", format="avif")
    start = {pid: cpu_ticks(pid) for pid in before}
    busy = wait_for(
        lambda: next((p for p in before if cpu_ticks(p) - start[p] > 30), None),
        timeout=30,
        interval=0.05,
        what="a render child to start working",
    )
    os.kill(busy, signal.SIGSEGV)  # what a decoder memory bug looks like from outside

    done = wait_finished(client, job["id"], worker_stack, timeout=30)
    assert done["status"] == "failed", done
    assert done["attempts"] == 1, done  # permanent: the same bytes would crash again
    assert "the decoder crashed" in done["error"] and "SIGSEGV" in done["error"], done["error"]

    assert worker_stack.workers[0].alive
    after = renderers(worker_stack)
    assert busy not in after and len(after) == 2, (before, after)
    again = submit(client, images.encode(images.two_halves(640, 480), "jpg"), sizes="t=64x64")
    assert wait_finished(client, again["id"], worker_stack)["status"] == "succeeded"


def test_render_children_get_no_credentials(worker_stack: Stack) -> None:
    pids = renderers(worker_stack)
    assert pids
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith(b"THUMBNAIL_")]


def test_worker_stop_leaves_no_render_children(worker_stack: Stack) -> None:
    pids = renderers(worker_stack)
    assert pids
    worker = worker_stack.workers[0]
    worker.stop()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in pids)
