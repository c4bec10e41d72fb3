"""One renderer process seen from the parent: spawn, readiness, kill, exit status."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection

from .wire import MAX_HEADER_BYTES, parse_json

# fork + exec of a fresh interpreter: no libvips or thread state is inherited, and no socket
# of the parent or of other children leaks in. Also how monitoring finds renderer processes.
CHILD_MODULE = "thumbnail_service.rendering.child"
_CHILD_CODE = (
    f"import sys; from {CHILD_MODULE} import main; main(int(sys.argv[1]), int(sys.argv[2]))"
)


class ChildProcess:
    """One renderer process and the parent's end of its socket."""

    def __init__(self, memory_limit_bytes: int, env: dict[str, str] | None) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD_CODE, str(theirs.fileno()), str(memory_limit_bytes)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.pid = self.proc.pid
        self._ready = False
        self.job_timeout = 0.0  # of the job in hand, for messages
        self.expired = False  # set by the watchdog when it killed the process

    def expire(self) -> None:
        """Watchdog: SIGKILL without reaping or closing (another thread owns those)."""
        self.expired = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float) -> None:
        if self._ready:
            return
        try:
            if not self.conn.poll(timeout):
                raise RuntimeError(f"the renderer process did not start within {timeout:g} s")
            hello = parse_json(self.conn.recv_bytes(MAX_HEADER_BYTES))
        except (EOFError, OSError):
            raise RuntimeError(
                f"the renderer process failed to start ({self.describe_exit()})"
            ) from None
        if hello.get("ready") is not True:
            raise RuntimeError("the renderer process failed to start (bad greeting)")
        self._ready = True

    def terminate(self) -> None:
        """SIGKILL the process and reap it (the socket stays open)."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()

    def kill(self) -> None:
        self.terminate()
        self.conn.close()

    def describe_exit(self, wait_seconds: float = 5) -> str:
        try:
            code = self.proc.wait(timeout=wait_seconds)
        except subprocess.TimeoutExpired:
            return "not responding; killed"
        if code < 0:
            name = _signal_name(-code)
            hint = ", e.g. by the OOM killer" if -code == signal.SIGKILL else ""
            return f"killed by {name}{hint}"
        return f"exited with status {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
