"""A service command (thumbnail-api, thumbnail-worker, ...) as a real process, for the tests
and the benchmarks that run the service the way a node runs a pod.

Each process runs in its own session (process group) so it can be SIGKILLed with everything
it forked, exactly like a node losing a pod, and stopped with SIGTERM like the kubelet does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.process import wait_until

BIN = Path(sys.executable).parent


class ServiceProcess:
    """One service command in its own session, output appended to `<logdir>/<name>.log`."""

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
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

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
        """SIGTERM the leader (it forwards it, as under the kubelet), then reap the group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._signal_group(signal.SIGKILL)  # leftovers of the group, if any

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class ServiceStack:
    """The service's own processes on one environment: `thumbnail-migrate`, one
    `thumbnail-api` on `port` and any number of `thumbnail-worker`s, all from the running
    Python's environment (the tests and the benchmarks build `env` their own way)."""

    def __init__(self, env: dict[str, str], logdir: Path, port: int) -> None:
        self.env = env
        self.logdir = logdir
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.api: ServiceProcess | None = None
        self.workers: list[ServiceProcess] = []

    def migrate(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "thumbnail-migrate")], env=self.env, capture_output=True, text=True,
            timeout=60,
        )

    def start_api(self, timeout: float = 30) -> ServiceProcess:
        api = ServiceProcess("api", [str(BIN / "thumbnail-api")], self.env, self.logdir).start()
        self.api = api

        def healthy() -> bool:
            if not api.alive:
                raise SubstrateError(f"thumbnail-api exited:\n{api.tail()}")
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as response:
                return bool(response.status == 200)

        wait_until(healthy, timeout=timeout, what=f"thumbnail-api on {self.base_url}",
                   log=api.log)
        return api

    def start_worker(self, extra_env: dict[str, str] | None = None) -> ServiceProcess:
        worker = ServiceProcess(
            f"worker{len(self.workers)}", [str(BIN / "thumbnail-worker")],
            {**self.env, **(extra_env or {})}, self.logdir,
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
