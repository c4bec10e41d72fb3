"""The service under test as real processes: thumbnail-migrate, thumbnail-api, thumbnail-worker.

Each process runs in its own session (process group) so a test can SIGKILL a worker with
everything it forked, exactly like a node losing a pod.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from thumbnail_substrate.service_process import ServiceProcess

BIN = Path(sys.executable).parent


T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.2, what: str
) -> T:
    """Poll until probe() returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
            time.sleep(interval)
            continue
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Stack:
    """API + worker(s) for one test module, sharing one database, queue and bucket pair."""

    def __init__(self, env: dict[str, str], logdir: Path, port: int) -> None:
        self.env = env
        self.logdir = logdir
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.api: ServiceProcess | None = None
        self.workers: list[ServiceProcess] = []

    def migrate(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "thumbnail-migrate")],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start_api(self) -> None:
        self.api = ServiceProcess("api", [str(BIN / "thumbnail-api")], self.env, self.logdir)
        self.api.start()
        wait_for(self._api_ready, timeout=30, what=f"API on {self.base_url}")

    def _api_ready(self) -> bool:
        assert self.api is not None
        if not self.api.alive:
            raise AssertionError(f"API exited:\n{self.api.tail()}")
        return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200

    def start_worker(self) -> ServiceProcess:
        worker = ServiceProcess(
            f"worker{len(self.workers)}", [str(BIN / "thumbnail-worker")], self.env, self.logdir
        )
        self.workers.append(worker.start())
        return worker

    def stop(self) -> None:
        for proc in [*self.workers, self.api]:
            if proc is not None:
                proc.stop()

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.tail()}" for p in [self.api, *self.workers] if p]
        return "\n".join(parts)
