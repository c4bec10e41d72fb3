"""`make dev`, the README's main command: the printed curl commands work as pasted."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from thumbnail_substrate.process import free_port
from thumbnail_substrate.process_tree import descendants_of, wait_all_gone

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.services


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            # The curl commands follow the marker line.
            lines.extend(proc.stdout.readline().rstrip("\n") for _ in range(5))
            return lines
    raise AssertionError("dev stack never became ready:\n" + "\n".join(lines[-30:]))


def test_dev_stack_serves_the_printed_curl_commands() -> None:
    env = {**os.environ, "THUMBNAIL_PORT": str(free_port())}
    proc = subprocess.Popen(
        ["scripts/dev.sh"], cwd=REPO, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        lines = _read_until(proc, "API ready at", timeout=120)
        # PostgreSQL, Redis, MinIO, the API and the worker run in their own sessions: only the
        # process tree finds them all.
        started = descendants_of(proc.pid)
        assert len(started) >= 5, started
        curls = [line.strip() for line in lines if line.strip().startswith("curl ")]
        submit, read = curls[0], curls[1]
        created = json.loads(subprocess.run(["bash", "-c", submit], cwd=REPO, check=True,
                                            capture_output=True, text=True).stdout)
        assert created["status"] == "queued"
        read = read.replace("<id>", created["id"])
        deadline = time.monotonic() + 60
        while True:
            job = json.loads(subprocess.run(["bash", "-c", read], cwd=REPO, check=True,
                                            capture_output=True, text=True).stdout)
            if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert job["status"] == "succeeded", job
        assert {t["name"] for t in job["thumbnails"]} == {"small", "medium"}
        assert re.search(r"X-API-Key: dev-", submit)
        # The console is on in `make dev`, at the URL it prints (docs/console.md).
        (console,) = [line for line in lines if line.startswith("==> Console at ")]
        console_url = console.split()[3]
        with urllib.request.urlopen(console_url, timeout=10) as page:
            assert page.status == 200 and b"Thumbnail console" in page.read()
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        try:
            proc.wait(120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert wait_all_gone(started, timeout=15) == set(), "processes left behind after Ctrl-C"
