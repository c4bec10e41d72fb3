"""The service under test as real processes: thumbnail-migrate, thumbnail-api, thumbnail-worker.

Each process runs in its own session (process group) so a test can SIGKILL a worker with
everything it forked, exactly like a node losing a pod.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

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


class ServiceProcess:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = logdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, no acks, no goodbyes."""
        self._signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        if not self.alive:
            self._signal_group(signal.SIGKILL)  # reap leftovers of the group, if any
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)  # like the kubelet: the leader forwards it
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._signal_group(signal.SIGKILL)

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


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
