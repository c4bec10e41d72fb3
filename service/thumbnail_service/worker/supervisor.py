"""`thumbnail-worker`: a small supervisor for one worker pod's processes.

It starts `THUMBNAIL_WORKER_PROCESSES` worker processes (`worker.consumer`: Dramatiq threads
consuming the queue) and one sweeper (`worker.sweeper`), each a fresh interpreter (fork +
exec: nothing inherited but the environment), and keeps them running:

* a process that exits (SIGKILL, OOM kill, a crash) is replaced at once, the others and the
  sweeper carry on; its unfinished job comes back through the lease sweeper;
* a process that stops beating (its Dramatiq threads died, its event loop is stuck, it was
  SIGSTOPped) for `3 x THUMBNAIL_WORKER_HEARTBEAT_SECONDS` is SIGKILLed and replaced;
* a process that keeps dying young (each within 30 s of its start; restarts backed off 0, 1,
  2, 4 s; the 5th such death in a row) is a crash loop no restart here will fix: the
  supervisor stops everything and exits 1, so that Kubernetes (CrashLoopBackOff, visible in
  the operator's status) or `make dev` restarts the whole worker;
* SIGTERM or SIGINT stops the processes gracefully (in-flight jobs finish) and exits 0.

Dramatiq's own master process (`dramatiq --processes N`) did the opposite: one dead worker
process made it shut everything down, sweeper included, and exit.

With `THUMBNAIL_WORKER_HEALTH_PORT` set, it serves on `THUMBNAIL_HOST`:
`GET /healthz` (liveness: 200 while its supervision loop runs) and `GET /readyz` (200 while
every process is up and beating), both with a JSON account of the processes, and
`GET /metrics`: Prometheus metrics summed over all its processes, dead ones included, and its
own (worker/metrics.py; the processes record into a directory under the temporary directory
that it makes, hands down as PROMETHEUS_MULTIPROC_DIR and removes on exit).

The supervisor logs to stderr; its processes' output (stdout and stderr) goes to stdout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from ..logs import configure_logging
from ..settings import Settings
from . import metrics
from .link import FD_VARIABLE, MISSED_BEATS, PID_VARIABLE

log = logging.getLogger(__name__)

# Before its first heartbeat a process may take this long to start (imports, render children).
STARTUP_GRACE_SECONDS = 60.0
# Liveness fails when the supervision loop has not run for this long.
LOOP_STALE_SECONDS = 10.0
TICK_SECONDS = 0.25


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a process that died, and when to stop trying."""

    stable_seconds: float = 30.0  # a process that ran this long was not crash-looping
    max_quick_deaths: int = 5  # consecutive deaths younger than that: give up after these
    max_delay_seconds: float = 30.0

    def after_death(self, ran_seconds: float, quick_deaths: int) -> tuple[int, float | None]:
        """(consecutive quick deaths now, seconds to wait before restarting, or None to
        give up) for a process that died after `ran_seconds`."""
        if ran_seconds >= self.stable_seconds:
            return 0, 0.0
        quick_deaths += 1
        if quick_deaths >= self.max_quick_deaths:
            return quick_deaths, None
        delay = 0.0 if quick_deaths == 1 else float(2 ** (quick_deaths - 2))  # 0, 1, 2, 4, ...
        return quick_deaths, min(delay, self.max_delay_seconds)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _entry(module: str, *args: str) -> list[str]:
    """A fresh interpreter running `thumbnail_service.worker.<module>.main()` (its module
    name in the command line, for `ps` and monitoring)."""
    code = f"from thumbnail_service.worker.{module} import main; main()"
    return [sys.executable, "-c", code, *args]


@dataclass
class Slot:
    """One supervised process and the state of its current incarnation."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    beats: int | None = None  # read end of the heartbeat pipe
    started_at: float = 0.0
    last_beat: float | None = None
    hung: bool = False  # SIGKILLed by us for missing heartbeats
    quick_deaths: int = 0
    restart_at: float | None = 0.0  # start the next incarnation at this time (None: do not)
    restarts: int = 0
    restart_causes: Counter[str] = field(default_factory=Counter)  # metrics.restart_cause
    previous_pid: int | None = None
    history: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def status(self, now: float, ttl: float) -> dict[str, Any]:
        up = self.proc is not None and self.proc.returncode is None  # the loop polls it
        fresh = self.last_beat is not None and now - self.last_beat <= ttl
        return {
            "pid": self.pid,
            "up": up,
            "ready": bool(up and fresh),
            "last_heartbeat_seconds_ago": (
                None if self.last_beat is None else round(now - self.last_beat, 2)
            ),
            "restarts": self.restarts,
        }


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        policy: RestartPolicy | None = None,
        *,
        startup_grace_seconds: float = STARTUP_GRACE_SECONDS,
        metrics_dir: Path | None = None,
    ) -> None:
        """`metrics_dir`: the processes' PROMETHEUS_MULTIPROC_DIR (none: they get none)."""
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.policy = policy or RestartPolicy()
        self.startup_grace = startup_grace_seconds
        self.ttl = settings.worker_heartbeat_seconds * MISSED_BEATS
        self.slots = [
            Slot(f"worker-{i}", _entry("consumer", f"worker-{i}"))
            for i in range(settings.worker_processes)
        ]
        self.slots.append(Slot("sweeper", _entry("sweeper")))
        self._selector = selectors.DefaultSelector()
        self._stopping = False
        self._gave_up = False
        self._init = os.getpid() == 1  # in a container: orphans are ours to reap
        self.tick = time.monotonic()

    # --- the loop ---------------------------------------------------------------------

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        if not self._stopping:
            log.info("%s: stopping the worker processes", signal.Signals(signum).name)
        self._stopping = True

    def run(self) -> int:
        log.info(
            "supervising %d worker process(es) and a sweeper (heartbeat every %gs)",
            self.settings.worker_processes,
            self.settings.worker_heartbeat_seconds,
        )
        while not self._stopping:
            now = time.monotonic()
            self.tick = now
            for slot in self.slots:
                self._check(slot, now)
            if self._init:
                self._reap_orphans()
            self._read_beats(TICK_SECONDS)
        self._shutdown()
        return 1 if self._gave_up else 0

    def _check(self, slot: Slot, now: float) -> None:
        if slot.proc is None:
            if slot.restart_at is not None and now >= slot.restart_at:
                self._start(slot, now)
            return
        code = slot.proc.poll()
        if code is not None:
            self._died(slot, code, now)
            return
        deadline = (
            slot.last_beat + self.ttl
            if slot.last_beat is not None
            else slot.started_at + max(self.startup_grace, self.ttl)
        )
        if now > deadline and not slot.hung:
            silent = now - (slot.last_beat or slot.started_at)
            log.error(
                "%s (pid %d) sent no heartbeat for %.1fs: hung; killing it",
                slot.name, slot.proc.pid, silent,
            )
            slot.hung = True
            slot.proc.kill()

    def _reap_orphans(self) -> None:
        """As PID 1 of a container we inherit every orphan (e.g. the render processes of a
        worker process that was killed; they exit on their own): reap them, so that they do
        not stay zombies. Our own processes are left to their Popen."""
        managed = {s.pid for s in self.slots if s.proc is not None and s.proc.returncode is None}
        while True:
            try:
                waitable = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if waitable is None or waitable.si_pid in managed:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(waitable.si_pid, 0)

    def _start(self, slot: Slot, now: float) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        env = {**os.environ, FD_VARIABLE: str(write_end), PID_VARIABLE: str(os.getpid())}
        env.pop(metrics.DIRECTORY_VARIABLE, None)
        if self.metrics_dir is not None:
            env[metrics.DIRECTORY_VARIABLE] = str(self.metrics_dir)
        try:
            slot.proc = subprocess.Popen(
                slot.argv,
                env=env,
                pass_fds=(write_end,),
                stdin=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,  # both to our stdout; ours (stderr) stays apart
            )
        except OSError as exc:
            os.close(read_end)
            log.error("%s: cannot start: %s", slot.name, exc)
            slot.proc = None
            self._schedule_restart(slot, 0.0, now, metrics.restart_cause(None, hung=False))
            return
        finally:
            os.close(write_end)
        slot.beats = read_end
        self._selector.register(read_end, selectors.EVENT_READ, slot)
        slot.started_at = now
        slot.last_beat = None
        slot.hung = False
        slot.restart_at = None
        if slot.previous_pid is None:
            log.info("%s: started (pid %d)", slot.name, slot.proc.pid)
        else:
            log.warning(
                "%s: started pid %d in place of pid %d", slot.name, slot.proc.pid, slot.previous_pid
            )

    def _died(self, slot: Slot, code: int, now: float) -> None:
        assert slot.proc is not None
        ran = now - slot.started_at
        cause = describe_exit(code) + (" after missing its heartbeats" if slot.hung else "")
        slot.previous_pid = slot.proc.pid
        slot.proc = None
        self._close_beats(slot)
        self._forget(slot.previous_pid)
        slot.history.append(cause)
        log.error("%s (pid %d) %s after %.1fs", slot.name, slot.previous_pid, cause, ran)
        self._schedule_restart(slot, ran, now, metrics.restart_cause(code, slot.hung))

    def _forget(self, pid: int) -> None:
        """A process is gone: its live gauges (jobs in progress) go with it."""
        if self.metrics_dir is not None:
            metrics.forget_process(self.metrics_dir, pid)

    def _schedule_restart(self, slot: Slot, ran: float, now: float, cause: str) -> None:
        slot.quick_deaths, delay = self.policy.after_death(ran, slot.quick_deaths)
        if delay is None:
            log.critical(
                "%s died %d times in a row within %gs of starting (last: %s): a crash loop; "
                "stopping everything and exiting 1 so that the worker is restarted as a whole",
                slot.name, slot.quick_deaths, self.policy.stable_seconds,
                slot.history[-1] if slot.history else "cannot start",
            )
            self._gave_up = True
            self._stopping = True
            return
        slot.restarts += 1
        slot.restart_causes[cause] += 1
        slot.restart_at = now + delay
        if delay:
            log.warning("%s: restarting in %gs", slot.name, delay)

    def _read_beats(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            slot: Slot = key.data
            try:
                data = os.read(key.fd, 4096)
            except BlockingIOError:
                continue
            if not data:  # the process closed its end: it is exiting
                self._close_beats(slot)
                continue
            first = slot.last_beat is None
            slot.last_beat = time.monotonic()
            if first and slot.proc is not None:
                log.info(
                    "%s (pid %d) is up after %.1fs",
                    slot.name, slot.proc.pid, slot.last_beat - slot.started_at,
                )

    def _close_beats(self, slot: Slot) -> None:
        if slot.beats is not None:
            self._selector.unregister(slot.beats)
            os.close(slot.beats)
            slot.beats = None

    def _shutdown(self) -> None:
        running = [s for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for slot in running:
            assert slot.proc is not None
            slot.proc.send_signal(signal.SIGTERM)
        # The worker processes finish their jobs in hand (as Dramatiq's master allowed).
        deadline = time.monotonic() + self.settings.job_timeout_seconds + 35
        while any(s.proc.poll() is None for s in running if s.proc) and time.monotonic() < deadline:
            self.tick = time.monotonic()
            if self._init:
                self._reap_orphans()
            self._read_beats(TICK_SECONDS)
        for slot in running:
            assert slot.proc is not None
            if slot.proc.poll() is None:
                log.error("%s (pid %d) did not stop in time: killing it", slot.name, slot.pid)
                slot.proc.kill()
            slot.proc.wait()
            self._close_beats(slot)
            self._forget(slot.proc.pid)
        log.info("all worker processes stopped")

    # --- health -----------------------------------------------------------------------

    def status(self) -> tuple[bool, bool, dict[str, Any]]:
        """(alive, ready, body) for the health endpoints."""
        now = time.monotonic()
        processes = {s.name: s.status(now, self.ttl) for s in self.slots}
        alive = now - self.tick <= LOOP_STALE_SECONDS and not self._gave_up
        ready = alive and not self._stopping and all(p["ready"] for p in processes.values())
        return alive, ready, {"status": "ok" if ready else "unavailable", "processes": processes}

    def scrape(self) -> bytes:
        """GET /metrics: every process's metrics (from `metrics_dir`) and the supervisor's."""
        now = time.monotonic()
        states = [
            metrics.ProcessState(s.name, s.status(now, self.ttl)["ready"], s.restart_causes)
            for s in self.slots
        ]
        return metrics.exposition(self.metrics_dir, states)


def serve_health(supervisor: Supervisor, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                try:
                    payload = supervisor.scrape()
                except Exception:
                    log.exception("GET /metrics failed")
                    self.send_error(500)
                    return
                self._send(200, metrics.CONTENT_TYPE, payload)
                return
            alive, ready, body = supervisor.status()
            if self.path == "/healthz":
                ok = alive
                body["status"] = "ok" if alive else "unavailable"
            elif self.path == "/readyz":
                ok = ready
            else:
                self.send_error(404)
                return
            self._send(200 if ok else 503, "application/json", json.dumps(body).encode())

        def _send(self, code: int, content_type: str, payload: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds: not worth a log line each

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log.info("health endpoints on http://%s:%d/healthz and /readyz, metrics on /metrics",
             host, port)
    return server


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    metrics_dir = None
    if settings.worker_health_port:  # where /metrics is served: the processes record
        try:
            metrics_dir = metrics.prepare_directory()
        except OSError as exc:
            log.error("no worker metrics (only the supervisor's): cannot make a directory "
                      "for them: %s", exc)
    supervisor = Supervisor(settings, metrics_dir=metrics_dir)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    server = None
    if settings.worker_health_port:
        try:
            server = serve_health(supervisor, settings.host, settings.worker_health_port)
        except OSError as exc:
            log.critical(
                "cannot serve health on %s:%d: %s",
                settings.host, settings.worker_health_port, exc,
            )
            if metrics_dir is not None:
                metrics.remove_directory(metrics_dir)
            sys.exit(1)
    code = supervisor.run()
    if server is not None:
        server.shutdown()
    if metrics_dir is not None:
        metrics.remove_directory(metrics_dir)
    sys.exit(code)
