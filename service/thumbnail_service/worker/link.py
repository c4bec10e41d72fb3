"""A supervised process's end of its supervisor (`worker.supervisor`): heartbeats over a
pipe, and death with the supervisor.

The supervisor passes the pipe's write end as `THUMBNAIL_SUPERVISOR_FD` and its own pid as
`THUMBNAIL_SUPERVISOR_PID`. A process run by hand (no such variables) gets a link that does
nothing, so a worker process started by hand still works on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

FD_VARIABLE = "THUMBNAIL_SUPERVISOR_FD"
MISSED_BEATS = 3  # a process that misses this many heartbeats counts as dead
PID_VARIABLE = "THUMBNAIL_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


class SupervisorLink:
    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def from_environment(cls) -> SupervisorLink:
        """Reads (and removes, so that render children do not inherit them) the variables;
        asks the kernel for SIGTERM when the supervisor dies, so a killed supervisor leaves
        no worker behind (it finishes its jobs and exits, as on any SIGTERM)."""
        fd_text = os.environ.pop(FD_VARIABLE, "")
        pid_text = os.environ.pop(PID_VARIABLE, "")
        if not fd_text:
            return cls(None)
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if pid_text and os.getppid() != int(pid_text):
            # The supervisor died before the request above took effect.
            log.error("the supervisor (pid %s) is gone; exiting", pid_text)
            sys.exit(1)
        fd = int(fd_text)
        os.set_blocking(fd, False)
        return cls(fd)

    def beat(self) -> None:
        """One heartbeat: 'this process is alive and working'."""
        if self._fd is None:
            return
        try:
            os.write(self._fd, b".")
        except BlockingIOError:
            pass  # the supervisor is behind on reading: it has beats enough
        except OSError:  # the supervisor is gone; the death signal follows
            self._fd = None
