"""The renderer process: started by `process.ChildProcess`, serves one job at a time."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any

# Imports pyvips (and libvips) at once: before `main` sets any memory limit.
from ..imaging import ImageFormat, ImagingError, Thumbnail, render
from .wire import dump, options_from_json, passed_through_name, thumbnail_meta


def main(fd: int, memory_limit_bytes: int) -> None:
    """Entry point of a renderer process: serve jobs until the parent closes the socket."""
    # A terminal's Ctrl-C reaches the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    _prefer_oom_kill()
    if memory_limit_bytes > 0:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    try:
        conn.send_bytes(dump({"ready": True, "pid": os.getpid()}))
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
                    options_from_json(request["options"]),
                    allowed=frozenset(ImageFormat(f) for f in request["allowed"]),
                    max_pixels=int(request["max_pixels"]),
                    timeout_seconds=float(request["timeout_seconds"]),
                )
                reply: dict[str, Any] = {"thumbnails": [thumbnail_meta(t) for t in thumbnails]}
            except (ImagingError, ValueError) as exc:
                reply = {"error": passed_through_name(exc), "message": str(exc)}
            except MemoryError:
                thumbnails, retire = [], True
                reply = {"error": "MemoryError", "message": ""}
            except Exception as exc:
                traceback.print_exc()
                reply = {"error": "unexpected", "type": type(exc).__name__, "message": str(exc)}
            del data
            conn.send_bytes(dump(reply))
            for thumb in thumbnails:
                conn.send_bytes(thumb.data)
            if retire:
                return
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent killed the job or died


def _prefer_oom_kill() -> None:
    """Make this process the OOM killer's first choice (raising the score needs no privilege),
    so that a decode blowing the pod's memory limit kills the renderer, not the worker."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
