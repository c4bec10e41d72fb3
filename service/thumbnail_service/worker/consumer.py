"""One worker process: a Dramatiq worker (`THUMBNAIL_WORKER_THREADS` threads consuming the
queue) and its heartbeat. `thumbnail-worker` (the supervisor) starts `WORKER_PROCESSES` of
these and replaces any that dies or stops beating.

    python -c 'from thumbnail_service.worker.consumer import main; main()' NAME

The heartbeat runs every `THUMBNAIL_WORKER_HEARTBEAT_SECONDS` and only while the process can
work: its Dramatiq threads are alive and its event loop (where jobs run) answers. Each beat
goes to the supervisor (a byte on a pipe) and to Redis (the API counts live workers there).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker

from ..errors import DependencyUnavailable
from ..queue import JobQueue
from ..settings import Settings
from .link import MISSED_BEATS, SupervisorLink

log = logging.getLogger(__name__)


def build_worker(settings: Settings, broker: RedisBroker) -> dramatiq.Worker:
    return dramatiq.Worker(
        broker,
        queues={settings.queue_name},
        worker_threads=settings.worker_threads,
        # The consumers' longest idle backoff: how long a job sent to an idle worker waits.
        worker_timeout=settings.worker_idle_poll_ms,
    )


class Heartbeat(threading.Thread):
    def __init__(
        self,
        worker: dramatiq.Worker,
        queue: JobQueue,
        link: SupervisorLink,
        *,
        interval: float,
        worker_id: str,
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self._worker = worker
        self._queue = queue
        self._link = link
        self._interval = interval
        self.worker_id = worker_id
        self._stopping = threading.Event()

    def run(self) -> None:
        last_problem: str | None = None
        redis_down = False
        while True:
            problem = self.problem()
            if problem != last_problem:
                if problem:
                    log.error("%s: heartbeat withheld: %s", self.worker_id, problem)
                elif last_problem:
                    log.warning("%s: healthy again", self.worker_id)
                last_problem = problem
            if problem is None:
                self._link.beat()
                try:
                    self._queue.beat_sync(self.worker_id, self._interval * MISSED_BEATS)
                    if redis_down:
                        log.info("%s: heartbeats reach Redis again", self.worker_id)
                    redis_down = False
                except DependencyUnavailable as exc:
                    if not redis_down:
                        log.warning("%s: heartbeat not recorded: %s", self.worker_id, exc)
                    redis_down = True
            if self._stopping.wait(self._interval):
                return

    def problem(self) -> str | None:
        """Why this process cannot work, or None."""
        threads = [*self._worker.consumers.values(), *self._worker.workers]
        dead = [t.name for t in threads if not t.is_alive()]
        if dead:
            return f"Dramatiq threads died: {', '.join(dead)}"
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            future = asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop_thread.loop)
            try:
                future.result(timeout=self._interval)
            except concurrent.futures.TimeoutError:
                future.cancel()
                return f"the event loop did not answer within {self._interval:g}s"
        return None

    def stop(self) -> None:
        """Stop beating and count this worker out in Redis at once."""
        self._stopping.set()
        self.join(self._interval + 5)
        try:
            self._queue.forget_sync(self.worker_id)
        except DependencyUnavailable as exc:
            log.warning("%s: not removed from the live workers: %s", self.worker_id, exc)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    name = args[0] if args else "worker"
    link = SupervisorLink.from_environment()
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("%s: %s: finishing the jobs in hand, then exiting",
                     name, signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    from . import tasks  # the broker and the actor (reads the settings, sets up logging)

    settings = tasks.settings
    tasks.broker.emit_after("process_boot")
    worker = build_worker(settings, tasks.broker)
    worker.start()
    heartbeat = Heartbeat(
        worker,
        tasks.job_queue,
        link,
        interval=settings.worker_heartbeat_seconds,
        worker_id=f"{socket.gethostname()}/{name}/{os.getpid()}",
    )
    heartbeat.start()
    log.info(
        "%s: consuming %s with %d thread(s)", name, settings.queue_name, settings.worker_threads
    )
    while not stop.wait(1.0):
        pass
    heartbeat.stop()
    worker.stop(timeout=int((settings.job_timeout_seconds + 30) * 1000))
    tasks.broker.close()
    log.info("%s: stopped", name)

