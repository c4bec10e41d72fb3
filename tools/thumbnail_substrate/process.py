"""Child processes that never outlive us: own process group plus a parent-death signal."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.process_tree import descendants_of

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, component: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so TIME_WAIT leftovers of a restart do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise SubstrateError(
                f"{component}: port 127.0.0.1:{port} is already in use; stop whatever holds it "
                f"(`ss -ltnp 'sport = :{port}'`) or let the substrate pick a free port"
            ) from None


def tcp_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except SubstrateError:
            raise  # a crashed process: fail now, with its log
        except Exception:
            pass
        time.sleep(0.1)
    hint = f"; see {log}" if log else ""
    raise SubstrateError(f"{what} not ready after {timeout:.0f}s{hint}")


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> None:
    """Ask the kernel to send `sig` to this process when its parent exits."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


def _child_setup(uid: int | None, gid: int | None) -> Callable[[], None]:
    def setup() -> None:
        os.setsid()  # own process group, so stop() reaches grandchildren too
        if gid is not None:
            os.setgid(gid)
            os.setgroups([gid])
        if uid is not None:
            os.setuid(uid)
        # Set after setuid: changing credentials clears the parent-death signal.
        die_with_parent()

    return setup


class ManagedProcess:
    """One long-running server process with its log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | Path],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        uid: int | None = None,
        gid: int | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        shell: bool = False,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log = log
        self.env = env
        self.uid, self.gid = uid, gid
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.shell = shell
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start with output to the log file."""
        with open(self.log, "ab") as out:
            self._spawn(out)

    def start_attached(self) -> None:
        """Start with output on our terminal (for the user's own commands)."""
        self._spawn(None)

    def _spawn(self, out: IO[bytes] | None) -> None:
        if not self.shell and not os.access(self.argv[0], os.X_OK):
            raise SubstrateError(f"{self.name}: {self.argv[0]} is not executable")
        self._proc = subprocess.Popen(
            self.argv[0] if self.shell else self.argv,
            shell=self.shell,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(self.env or {})},
            cwd=self.cwd,
            preexec_fn=_child_setup(self.uid, self.gid),
        )

    def check_alive(self) -> bool:
        """Used inside readiness loops: a crashed server fails fast with its log."""
        if self._proc is not None and self._proc.poll() is not None:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise SubstrateError(
                f"{self.name} exited with code {self._proc.returncode}; see {self.log}: "
                + " | ".join(tail)
            )
        return True

    def pause(self) -> None:
        """SIGSTOP the server and every process it started (fault injection): its sockets
        stay open, so the kernel still accepts connections but nothing answers, like a hung
        server. Descendants are signalled one by one, as some leave the group (PostgreSQL
        backends call setsid); the leader first, so that it forks no new ones meanwhile."""
        self._signal_tree(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT everything `pause` stopped."""
        self._signal_tree(signal.SIGCONT)

    def _signal_tree(self, sig: signal.Signals) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)
        for pid in descendants_of(self._proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, self.stop_signal)
            os.killpg(proc.pid, signal.SIGCONT)  # a paused server must run to stop
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        # Stragglers that ignored SIGTERM but kept the group (e.g. postgres backends).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def wait(self) -> int:
        assert self._proc is not None
        return self._proc.wait()

    def kill(self) -> None:
        """SIGKILL the whole group at once (crash simulation)."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
            self._proc = None
