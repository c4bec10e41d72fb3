"""`render` in a pool of killable child processes: a time limit that really stops libvips.

Why: `render` stops libvips cooperatively (eval signal + kill flag), but some encoders never
look at that flag: libheif's AVIF encoder runs to completion, so a 0.5 s limit took 15.7 s.
Only killing the process is guaranteed to stop C code. Running untrusted input in a child
also keeps decoder memory bugs (a segfault, an abort, runaway allocation) out of the worker:
the child dies, the job fails, the worker carries on.

How:
- `processes` long-lived children (`process.ChildProcess`), each started as `python -c`
  (fork + exec, so no libvips or thread state is inherited, and no socket of the parent or
  of other children leaks in); each imports pyvips once, then serves one job at a time over
  a socketpair (`child.main`).
- The cooperative limit stays the first line: the child runs `render(..., timeout_seconds)`
  as is, which kills the libvips pipeline and answers with ProcessingTimeoutError. The
  parent waits `timeout_seconds + kill_grace_seconds`; past that it SIGKILLs the child,
  starts a replacement and raises ProcessingTimeoutError itself.
- A child that dies mid-job (signal, non-zero exit) gives RendererCrashedError ("the
  decoder crashed"), a permanent ImagingError; it is replaced too.
- Replies are JSON plus raw payload frames, never pickle (`wire`).
- Optional RLIMIT_AS per child (`memory_limit_bytes`); children also raise their own
  oom_score_adj so that under memory pressure the kernel kills a renderer, not the worker.

Errors raised in the child (UnsupportedFormat, TooLarge, Corrupt, ProcessingTimeout,
ImagingError, ValueError) reach the caller as the same types with the same messages; other
unexpected exceptions become RuntimeError (callers treat those as transient).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from ..imaging import (
    ImageFormat,
    ImageTooLargeError,
    OutputFormat,
    ProcessingTimeoutError,
    RenderOptions,
    Thumbnail,
)
from .process import ChildProcess
from .protocol import RendererCrashedError
from .wire import (
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    child_error,
    dump,
    options_to_json,
    parse_json,
    thumbnail_metas,
)

log = logging.getLogger(__name__)

WATCHDOG_SLACK_SECONDS = 2.0
# Why a child was replaced (`on_replace`): killed past the time limit, died mid-job, retired
# itself after a MemoryError, found dead while idle, failed to start, or any other error.
REPLACE_REASONS = ("timeout", "crashed", "memory", "died_idle", "start_failed", "error")


class IsolatedRenderer:
    """`render(...)` with the signature of `imaging.render`, run in one of `processes`
    children; up to `processes` renders run at once, more callers wait for a free child.

    Thread-safe. Children start in the constructor (without waiting for them); `close()`
    kills them all. Startup time of a child is not counted against a job's time limit.
    """

    def __init__(
        self,
        processes: int = 1,
        *,
        kill_grace_seconds: float = 1.0,
        memory_limit_bytes: int = 0,
        start_timeout_seconds: float = 60.0,
        env: Mapping[str, str] | None = None,
        on_replace: Callable[[str], None] | None = None,
    ) -> None:
        """`env`: the children's environment (default: this process's). Pass one without
        secrets: code running in a child (the point of isolating it) can read its own.
        `on_replace(reason)` is called for each child replaced (one of REPLACE_REASONS)."""
        if processes < 1:
            raise ValueError("processes must be >= 1")
        if kill_grace_seconds <= 0:
            raise ValueError("kill_grace_seconds must be > 0")
        self._grace = kill_grace_seconds
        self._memory_limit = memory_limit_bytes
        self._start_timeout = start_timeout_seconds
        self._env = dict(env) if env is not None else None
        self._on_replace = on_replace
        self._cond = threading.Condition()
        self._closed = False
        self._busy: set[ChildProcess] = set()
        self._idle: list[ChildProcess] = []
        try:
            for _ in range(processes):
                self._idle.append(ChildProcess(memory_limit_bytes, self._env))
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """Process ids of the current children (idle and busy), for monitoring and tests."""
        with self._cond:
            return sorted(c.pid for c in [*self._idle, *self._busy])

    def render(
        self,
        data: bytes,
        options: RenderOptions,
        *,
        allowed: frozenset[ImageFormat],
        max_pixels: int,
        timeout_seconds: float,
    ) -> list[Thumbnail]:
        header = dump(
            {
                "options": options_to_json(options),
                "allowed": sorted(f.value for f in allowed),
                "max_pixels": max_pixels,
                "timeout_seconds": timeout_seconds,
            }
        )
        child, watchdog = self._send(header, data, timeout_seconds)
        healthy = False
        failure: BaseException | None = None
        try:
            deadline = time.monotonic() + timeout_seconds + self._grace
            reply = parse_json(self._frame(child, deadline, timeout_seconds, MAX_HEADER_BYTES))
            if "error" in reply:
                healthy = reply["error"] != "MemoryError"  # that child retires itself
                raise child_error(reply, self._memory_limit)
            thumbnails = self._thumbnails(child, reply, options, deadline, timeout_seconds)
            healthy = True
            return thumbnails
        except BaseException as exc:
            failure = exc
            raise
        finally:
            watchdog.cancel()
            self._release(child, healthy, _replace_reason(child, failure))

    def close(self) -> None:
        """Kill every child (idempotent). Renders in flight fail with RuntimeError."""
        with self._cond:
            self._closed = True
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
            self._cond.notify_all()
        for child in idle:
            child.kill()
        for child in busy:  # their render thread still reads the socket: it closes it
            child.terminate()

    def __enter__(self) -> IsolatedRenderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- pool ---------------------------------------------------------------------------

    def _acquire(self) -> ChildProcess:
        """A started, idle child, marked busy; waits while all are busy."""
        while True:
            with self._cond:
                while not self._idle and not self._closed:
                    self._cond.wait()
                if self._closed:
                    raise RuntimeError("the isolated renderer is closed")
                child = self._idle.pop()
                self._busy.add(child)
            if child.alive():
                try:
                    child.wait_ready(self._start_timeout)
                except RuntimeError:
                    self._release(child, healthy=False, reason="start_failed")
                    raise
                return child
            # Died while idle (e.g. OOM-killed): the job has not started, take another one.
            log.warning("renderer pid %d died while idle (%s)", child.pid, child.describe_exit())
            self._release(child, healthy=False, reason="died_idle")

    def _release(self, child: ChildProcess, healthy: bool, reason: str = "error") -> None:
        """Back to the pool, or (if not healthy) killed and replaced by a fresh child;
        `reason` (REPLACE_REASONS) says why, for `on_replace`."""
        if healthy and child.expired:  # the watchdog may fire as a job completes
            healthy, reason = False, "timeout"
        if not healthy or self._closed:
            child.kill()
        with self._cond:
            self._busy.discard(child)
            if self._closed:
                return
            self._idle.append(child if healthy else ChildProcess(self._memory_limit, self._env))
            self._cond.notify()
        if not healthy and self._on_replace is not None:
            self._on_replace(reason)

    # --- one job ------------------------------------------------------------------------

    def _send(
        self, header: bytes, data: bytes, timeout_seconds: float
    ) -> tuple[ChildProcess, threading.Timer]:
        """Hand the job to a child; a child that cannot take it is replaced, once.

        The watchdog is the backstop for reads and writes that `poll` cannot bound (a child
        that stalls in the middle of a frame): it SIGKILLs the child a little after the
        hard limit, whatever this thread is blocked on; the render then times out.
        """
        for attempt in (1, 2):
            child = self._acquire()
            child.job_timeout = timeout_seconds
            watchdog = threading.Timer(
                timeout_seconds + self._grace + WATCHDOG_SLACK_SECONDS, child.expire
            )
            watchdog.daemon = True
            watchdog.start()
            try:
                child.conn.send_bytes(header)
                child.conn.send_bytes(data)
                return child, watchdog
            except OSError as exc:
                watchdog.cancel()
                error = self._crashed(child, "while receiving the job")
                self._release(child, healthy=False, reason=_replace_reason(child, error))
                if attempt == 2 or self._closed or isinstance(error, ProcessingTimeoutError):
                    raise error from exc
                log.warning("renderer pid %d could not take a job; retrying", child.pid)
        raise AssertionError("unreachable")

    def _thumbnails(
        self,
        child: ChildProcess,
        reply: dict[str, Any],
        options: RenderOptions,
        deadline: float,
        timeout_seconds: float,
    ) -> list[Thumbnail]:
        try:
            metas = thumbnail_metas(reply, options)
        except (KeyError, TypeError, ValueError) as exc:
            raise RendererCrashedError(f"the decoder sent a malformed reply ({exc})") from None
        thumbnails = []
        for meta in metas:
            payload = self._frame(child, deadline, timeout_seconds, MAX_PAYLOAD_BYTES)
            if len(payload) != meta["bytes"]:
                raise RendererCrashedError("the decoder sent a malformed reply (payload size)")
            thumbnails.append(
                Thumbnail(
                    name=meta["name"],
                    width=meta["width"],
                    height=meta["height"],
                    format=OutputFormat(meta["format"]),
                    content_type=meta["content_type"],
                    data=payload,
                    placeholder=meta.get("placeholder"),
                )
            )
        return thumbnails

    def _frame(
        self, child: ChildProcess, deadline: float, timeout_seconds: float, limit: int
    ) -> bytes:
        """The child's next message, or ProcessingTimeoutError (child killed) at `deadline`."""
        if not child.conn.poll(max(deadline - time.monotonic(), 0.0)):
            child.terminate()
            log.warning(
                "renderer pid %d killed: still busy %g s past the %g s time limit",
                child.pid,
                self._grace,
                timeout_seconds,
            )
            raise ProcessingTimeoutError(
                f"processing exceeded {timeout_seconds:g} s; the renderer process was killed"
            )
        try:
            return child.conn.recv_bytes(limit)
        except EOFError:
            raise self._crashed(child, "mid-job") from None
        except OSError as exc:  # oversized frame or a broken socket
            raise self._crashed(child, f"mid-job ({exc})") from None

    def _crashed(self, child: ChildProcess, when: str) -> Exception:
        if self._closed:
            return RuntimeError("the isolated renderer was closed during the render")
        if child.expired:
            child.terminate()
            log.warning("renderer pid %d killed by the watchdog (stalled)", child.pid)
            return ProcessingTimeoutError(
                f"processing exceeded {child.job_timeout:g} s; the renderer process was killed"
            )
        how = child.describe_exit(wait_seconds=2)  # its own exit status, if it is dying
        child.terminate()
        if self._memory_limit:
            how += f"; renderer memory limit {self._memory_limit} bytes"
        log.error("renderer pid %d died %s: %s", child.pid, when, how)
        return RendererCrashedError(f"the decoder crashed {when} ({how})")


def _replace_reason(child: ChildProcess, failure: BaseException | None) -> str:
    """Why a child that ended a job unhealthy is replaced (REPLACE_REASONS)."""
    if child.expired or isinstance(failure, ProcessingTimeoutError):
        return "timeout"
    if isinstance(failure, RendererCrashedError):
        return "crashed"
    if isinstance(failure, ImageTooLargeError):  # only unhealthy after a MemoryError reply
        return "memory"
    return "error"
