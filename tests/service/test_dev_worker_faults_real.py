"""`make dev` (scripts/dev.sh) keeps a worker running and says so on its console (issue #13,
finding 1): a SIGKILLed worker process is replaced by thumbnail-worker, a SIGKILLed
thumbnail-worker by the script, and jobs submitted with the printed curl command still
succeed. Before, the worker died for good and nothing was printed."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from thumbnail_substrate.process import free_port
from thumbnail_substrate.process_tree import descendants_of, wait_all_gone

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.services


class Console:
    """The dev stack's terminal: its output read by a thread, matched with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                self.lines.put(line.rstrip("\n"))

        threading.Thread(target=pump, daemon=True).start()

    def rest(self) -> list[str]:
        """What was printed and not matched yet."""
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        self.seen += rest
        return rest

    def expect(self, pattern: str, timeout: float, *, earlier: bool = False) -> re.Match[str]:
        """The next line matching `pattern` (or, with `earlier`, one already printed)."""
        for line in self.seen if earlier else ():
            if match := re.search(pattern, line):
                return match
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        tail = "\n".join(self.seen[-40:])
        raise AssertionError(f"no console line matching {pattern!r} in {timeout:.0f}s:\n{tail}")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def find(root: int, needle: str) -> list[int]:
    return sorted(p for p in descendants_of(root) if needle in cmdline(p))


def run(command: str) -> dict[str, object]:
    out = subprocess.run(["bash", "-c", command], cwd=REPO, check=True, capture_output=True,
                         text=True, timeout=30).stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_make_dev_restarts_a_dead_worker_and_says_so() -> None:
    env = {**os.environ, "THUMBNAIL_PORT": str(free_port())}
    proc = subprocess.Popen(
        ["scripts/dev.sh"], cwd=REPO, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    console = Console(proc)
    started: set[int] = set()
    try:
        console.expect("API ready at", timeout=120)
        submit = console.expect(r"^\s*(curl .* -F file=@.*)$", timeout=5).group(1)
        read = console.expect(r"^\s*(curl .*/v1/jobs/<id>)$", timeout=5).group(1)
        console.expect(r"worker-0 \(pid \d+\) is up", timeout=60, earlier=True)

        # One worker process SIGKILLed: thumbnail-worker replaces it and says so.
        (supervisor,) = find(proc.pid, "bin/thumbnail-worker")
        (consumer,) = find(supervisor, "worker.consumer")
        killed = time.monotonic()
        os.kill(consumer, signal.SIGKILL)
        console.expect(rf"worker-0 \(pid {consumer}\) killed by SIGKILL", timeout=10)
        console.expect(rf"worker-0: started pid \d+ in place of pid {consumer}", timeout=10)
        replaced = time.monotonic() - killed

        # thumbnail-worker itself SIGKILLed: the script starts a new one and says so.
        killed = time.monotonic()
        os.kill(supervisor, signal.SIGKILL)
        console.expect(r"==> the worker stopped \(killed by SIGKILL\); restarting it", 10)
        console.expect(r"worker-0 \(pid \d+\) is up", timeout=60)
        restarted = time.monotonic() - killed
        (new_supervisor,) = find(proc.pid, "bin/thumbnail-worker")
        assert new_supervisor != supervisor
        print(f"\n[make dev] worker process replaced in {replaced:.2f}s, thumbnail-worker "
              f"restarted and processing in {restarted:.2f}s")

        job = run(submit)
        assert job["status"] == "queued"
        deadline = time.monotonic() + 60
        while (job := run(read.replace("<id>", str(job["id"]))))["status"] not in (
            "succeeded", "failed",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert job["status"] == "succeeded", job
        started = descendants_of(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert wait_all_gone(started, timeout=15) == set(), "processes left behind after Ctrl-C"
    stopping = console.rest()
    assert not any("restarting it" in line for line in stopping), stopping  # Ctrl-C is final
