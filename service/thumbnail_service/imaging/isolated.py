"""`render` in a pool of killable child processes: a time limit that really stops libvips.

Why: `render` stops libvips cooperatively (eval signal + kill flag), but some encoders never
look at that flag: libheif's AVIF encoder runs to completion, so a 0.5 s limit took 15.7 s.
Only killing the process is guaranteed to stop C code. Running untrusted input in a child
also keeps decoder memory bugs (a segfault, an abort, runaway allocation) out of the worker:
the child dies, the job fails, the worker carries on.

How:
- `processes` long-lived children, each started as `python -c` (fork + exec, so no libvips
  or thread state is inherited, and no socket of the parent or of other children leaks in);
  each imports pyvips once, then serves one job at a time over a socketpair.
- The cooperative limit stays the first line: the child runs `render(..., timeout_seconds)`
  as is, which kills the libvips pipeline and answers with ProcessingTimeoutError. The
  parent waits `timeout_seconds + kill_grace_seconds`; past that it SIGKILLs the child,
  starts a replacement and raises ProcessingTimeoutError itself.
- A child that dies mid-job (signal, non-zero exit) gives RendererCrashedError ("the
  decoder crashed"), a permanent ImagingError; it is replaced too.
- Replies are JSON plus raw payload frames, never pickle: a child that decoded hostile bytes
  could be compromised, and unpickling its output would hand it the parent.
- Optional RLIMIT_AS per child (`memory_limit_bytes`); children also raise their own
  oom_score_adj so that under memory pressure the kernel kills a renderer, not the worker.

Errors raised in the child (UnsupportedFormat, TooLarge, Corrupt, ProcessingTimeout,
ImagingError, ValueError) reach the caller as the same types with the same messages; other
unexpected exceptions become RuntimeError (callers treat those as transient).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from .errors import (
    CorruptImageError,
    ImageTooLargeError,
    ImagingError,
    ProcessingTimeoutError,
    RendererCrashedError,
    UnsupportedFormatError,
)
from .models import (
    FitMode,
    ImageFormat,
    OutputFormat,
    RenderOptions,
    SizeSpec,
    Thumbnail,
)

log = logging.getLogger(__name__)

# Exceptions that cross the process boundary as themselves (looked up by class name).
_PASSED_THROUGH: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        UnsupportedFormatError,
        ImageTooLargeError,
        CorruptImageError,
        ProcessingTimeoutError,
        RendererCrashedError,
        ImagingError,
        ValueError,
    )
}
MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 30
MAX_MESSAGE_CHARS = 2000
WATCHDOG_SLACK_SECONDS = 2.0
_CHILD_CODE = (
    "import sys; from thumbnail_service.imaging.isolated import child_main; "
    "child_main(int(sys.argv[1]), int(sys.argv[2]))"
)


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
    ) -> None:
        """`env`: the children's environment (default: this process's). Pass one without
        secrets: code running in a child (the point of isolating it) can read its own."""
        if processes < 1:
            raise ValueError("processes must be >= 1")
        if kill_grace_seconds <= 0:
            raise ValueError("kill_grace_seconds must be > 0")
        self._grace = kill_grace_seconds
        self._memory_limit = memory_limit_bytes
        self._start_timeout = start_timeout_seconds
        self._env = dict(env) if env is not None else None
        self._cond = threading.Condition()
        self._closed = False
        self._busy: set[_Child] = set()
        self._idle: list[_Child] = []
        try:
            for _ in range(processes):
                self._idle.append(_Child(memory_limit_bytes, self._env))
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
        header = _dump(
            {
                "options": _options_to_json(options),
                "allowed": sorted(f.value for f in allowed),
                "max_pixels": max_pixels,
                "timeout_seconds": timeout_seconds,
            }
        )
        child, watchdog = self._send(header, data, timeout_seconds)
        healthy = False
        try:
            deadline = time.monotonic() + timeout_seconds + self._grace
            reply = _parse_json(self._frame(child, deadline, timeout_seconds, MAX_HEADER_BYTES))
            if "error" in reply:
                healthy = reply["error"] != "MemoryError"  # that child retires itself
                raise self._child_error(reply)
            thumbnails = self._thumbnails(child, reply, options, deadline, timeout_seconds)
            healthy = True
            return thumbnails
        finally:
            watchdog.cancel()
            self._release(child, healthy)

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

    def _acquire(self) -> _Child:
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
                    self._release(child, healthy=False)
                    raise
                return child
            # Died while idle (e.g. OOM-killed): the job has not started, take another one.
            log.warning("renderer pid %d died while idle (%s)", child.pid, child.describe_exit())
            self._release(child, healthy=False)

    def _release(self, child: _Child, healthy: bool) -> None:
        """Back to the pool, or (if not healthy) killed and replaced by a fresh child."""
        healthy = healthy and not child.expired  # the watchdog may fire as a job completes
        if not healthy or self._closed:
            child.kill()
        with self._cond:
            self._busy.discard(child)
            if self._closed:
                return
            self._idle.append(child if healthy else _Child(self._memory_limit, self._env))
            self._cond.notify()

    # --- one job ------------------------------------------------------------------------

    def _send(
        self, header: bytes, data: bytes, timeout_seconds: float
    ) -> tuple[_Child, threading.Timer]:
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
                self._release(child, healthy=False)
                if attempt == 2 or self._closed or isinstance(error, ProcessingTimeoutError):
                    raise error from exc
                log.warning("renderer pid %d could not take a job; retrying", child.pid)
        raise AssertionError("unreachable")

    def _thumbnails(
        self,
        child: _Child,
        reply: dict[str, Any],
        options: RenderOptions,
        deadline: float,
        timeout_seconds: float,
    ) -> list[Thumbnail]:
        try:
            metas = _thumbnail_metas(reply, options)
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
                )
            )
        return thumbnails

    def _frame(self, child: _Child, deadline: float, timeout_seconds: float, limit: int) -> bytes:
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

    def _crashed(self, child: _Child, when: str) -> Exception:
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

    def _child_error(self, reply: dict[str, Any]) -> Exception:
        name = str(reply.get("error"))
        message = str(reply.get("message", ""))[:MAX_MESSAGE_CHARS]
        if name == "MemoryError":
            limit = f" (limit {self._memory_limit} bytes)" if self._memory_limit else ""
            return ImageTooLargeError(f"rendering ran out of memory{limit}")
        cls = _PASSED_THROUGH.get(name)
        if cls is None:
            return RuntimeError(f"renderer: {reply.get('type', 'error')}: {message}")
        return cls(message)


class _Child:
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
            hello = _parse_json(self.conn.recv_bytes(MAX_HEADER_BYTES))
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


# --- wire format --------------------------------------------------------------------------


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _parse_json(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise RendererCrashedError("the decoder sent a malformed reply (not JSON)") from None
    if not isinstance(obj, dict):
        raise RendererCrashedError("the decoder sent a malformed reply (not an object)")
    return obj


def _options_to_json(options: RenderOptions) -> dict[str, Any]:
    return {
        "sizes": [[s.name, s.width, s.height] for s in options.sizes],
        "fit": options.fit.value,
        "format": options.format.value,
        "quality": options.quality,
    }


def _options_from_json(obj: dict[str, Any]) -> RenderOptions:
    return RenderOptions(
        sizes=tuple(SizeSpec(str(n), int(w), int(h)) for n, w, h in obj["sizes"]),
        fit=FitMode(obj["fit"]),
        format=OutputFormat(obj["format"]),
        quality=int(obj["quality"]),
    )


def _thumbnail_metas(reply: dict[str, Any], options: RenderOptions) -> list[dict[str, Any]]:
    """The reply's thumbnail descriptions, checked strictly (the child is untrusted)."""
    metas = reply["thumbnails"]
    if not isinstance(metas, list):
        raise TypeError("thumbnails is not a list")
    if [m.get("name") if isinstance(m, dict) else None for m in metas] != [
        s.name for s in options.sizes
    ]:
        raise ValueError("thumbnail names differ from the requested sizes")
    for meta in metas:
        for key in ("width", "height", "bytes"):
            if type(meta[key]) is not int or meta[key] < 0:
                raise ValueError(f"bad {key}")
        if meta["bytes"] > MAX_PAYLOAD_BYTES:
            raise ValueError("payload too large")
        OutputFormat(meta["format"])
        if not isinstance(meta["content_type"], str):
            raise TypeError("bad content_type")
    return metas


# --- child side ---------------------------------------------------------------------------


def child_main(fd: int, memory_limit_bytes: int) -> None:
    """Entry point of a renderer process: serve jobs until the parent closes the socket."""
    # A terminal's Ctrl-C reaches the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    _prefer_oom_kill()
    from .render import render  # imports pyvips (and libvips) before any limit applies

    if memory_limit_bytes > 0:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    try:
        conn.send_bytes(_dump({"ready": True, "pid": os.getpid()}))
        while True:
            try:
                request = json.loads(conn.recv_bytes())
                data = conn.recv_bytes()
            except EOFError:
                return  # the parent closed us or died
            retire = False
            thumbnails: list[Thumbnail] = []
            try:
                thumbnails = render(
                    data,
                    _options_from_json(request["options"]),
                    allowed=frozenset(ImageFormat(f) for f in request["allowed"]),
                    max_pixels=int(request["max_pixels"]),
                    timeout_seconds=float(request["timeout_seconds"]),
                )
                reply: dict[str, Any] = {
                    "thumbnails": [
                        {
                            "name": t.name,
                            "width": t.width,
                            "height": t.height,
                            "format": t.format.value,
                            "content_type": t.content_type,
                            "bytes": len(t.data),
                        }
                        for t in thumbnails
                    ]
                }
            except (ImagingError, ValueError) as exc:
                reply = {"error": _passed_through_name(exc), "message": str(exc)}
            except MemoryError:
                thumbnails, retire = [], True
                reply = {"error": "MemoryError", "message": ""}
            except Exception as exc:
                traceback.print_exc()
                reply = {"error": "unexpected", "type": type(exc).__name__, "message": str(exc)}
            del data
            conn.send_bytes(_dump(reply))
            for thumb in thumbnails:
                conn.send_bytes(thumb.data)
            if retire:
                return
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent killed the job or died


def _passed_through_name(exc: Exception) -> str:
    return next(c.__name__ for c in type(exc).__mro__ if c.__name__ in _PASSED_THROUGH)


def _prefer_oom_kill() -> None:
    """Make this process the OOM killer's first choice (raising the score needs no privilege),
    so that a decode blowing the pod's memory limit kills the renderer, not the worker."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
