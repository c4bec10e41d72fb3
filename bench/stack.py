"""The real service stack on loopback for the benchmarks: PostgreSQL, Redis and MinIO from
thumbnail_substrate, then thumbnail-migrate, thumbnail-api and thumbnail-worker as processes.

The same approach as the service tests (tests/service/conftest.py), without importing them.
Every server and service process lives in its own process group and is torn down on exit
(the substrate's servers also die with this process). `/proc` helpers account the CPU time
and resident memory of each component's whole process tree, so a benchmark can show where
the two cores went.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from thumbnail_service.rendering.process import CHILD_MODULE
from thumbnail_substrate import testing
from thumbnail_substrate.minio import MinioServer
from thumbnail_substrate.postgres import PostgresServer
from thumbnail_substrate.process import free_port
from thumbnail_substrate.redis import RedisServer
from thumbnail_substrate.service_process import ServiceStack

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def wait_for(probe: Callable[[], bool], *, timeout: float, what: str) -> None:
    """The shared wait_for; an HTTP or socket error counts as "not yet"."""
    testing.wait_for(probe, timeout=timeout, what=what, interval=0.1,
                     ignore=(httpx.HTTPError, OSError))


# --- /proc accounting ---------------------------------------------------------------------


def children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    """`root` and every live descendant."""
    children = children_map()
    out: list[int] = []
    todo = [root]
    while todo and len(out) < 10_000:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) of a process tree, including children it has reaped: the sum
    over live processes of utime+stime+cutime+cstime counts every process once."""
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(root: int) -> dict[int, int]:
    """RSS of every live process of the tree, bytes by pid."""
    return {pid: rss_bytes(pid) for pid in process_tree(root)}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


# --- service processes --------------------------------------------------------------------


@dataclass
class Servers:
    postgres: PostgresServer
    redis: RedisServer
    minio: MinioServer


@contextmanager
def servers() -> Iterator[Servers]:
    """PostgreSQL, Redis and MinIO on loopback for the duration of the block."""
    with ExitStack() as stack:
        started = time.monotonic()
        postgres = stack.enter_context(PostgresServer())
        redis = stack.enter_context(RedisServer())
        minio = stack.enter_context(MinioServer())
        from bench.common import progress

        progress(f"PostgreSQL, Redis, MinIO up in {time.monotonic() - started:.1f}s")
        yield Servers(postgres, redis, minio)


class Stack(ServiceStack):
    """API + worker(s) on one private database, queue and bucket pair of `servers`."""

    API_KEY = "bench-" + uuid.uuid4().hex[:8]

    def __init__(self, srv: Servers, logdir: Path, overrides: dict[str, str] | None = None):
        self.servers = srv
        suffix = uuid.uuid4().hex[:10]
        self.database = f"bench_{suffix}"
        srv.postgres.create_database(self.database)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBNAIL_")}
        env.update(srv.postgres.env())
        env.update(srv.redis.env())
        env.update(srv.minio.env())
        env.update(
            {
                "THUMBNAIL_DATABASE_NAME": self.database,
                "THUMBNAIL_QUEUE_NAME": f"thumbnails-{suffix}",
                "THUMBNAIL_BUCKET_ORIGINALS": f"raws-{suffix}",
                "THUMBNAIL_BUCKET_THUMBNAILS": f"thumbnails-{suffix}",
                "THUMBNAIL_API_KEYS": self.API_KEY,
                "THUMBNAIL_HOST": "127.0.0.1",
                "THUMBNAIL_PORT": str(port),
                "THUMBNAIL_LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(overrides or {})
        super().__init__(env, logdir, port)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.API_KEY}

    def migrate_or_fail(self) -> None:
        result = self.migrate()
        if result.returncode != 0:
            raise RuntimeError(f"thumbnail-migrate failed:\n{result.stdout}{result.stderr}")

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def component_roots(self) -> dict[str, int]:
        """Root pid of each component's process tree, for CPU accounting."""
        roots: dict[str, int] = {}
        if self.api is not None:
            roots["api"] = self.api.pid
        for worker in self.workers:
            roots[worker.name] = worker.pid
        for name, server in (
            ("postgresql", self.servers.postgres),
            ("redis", self.servers.redis),
            ("minio", self.servers.minio),
        ):
            pids = [p.pid for p in server.processes if p.pid is not None]
            if pids:
                roots[name] = pids[0]
        return roots


@contextmanager
def stack(
    srv: Servers, overrides: dict[str, str] | None = None, *, api: bool = True,
    keep_logs: bool = False,
) -> Iterator[Stack]:
    """A migrated private stack with the API running (workers are started by the caller).
    Its log directory is removed afterwards unless `keep_logs` (the soak reports it)."""
    logdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    s = Stack(srv, logdir, overrides)
    s.migrate_or_fail()
    try:
        if api:
            s.start_api()
        yield s
    except BaseException:
        from bench.common import progress

        progress(f"stack logs ({logdir}):\n{s.logs()}")
        raise
    finally:
        s.stop()
        if not keep_logs:  # (printed above when something failed)
            shutil.rmtree(logdir, ignore_errors=True)


class CpuMeter:
    """CPU seconds each component's process tree used between start() and stop()."""

    def __init__(self, roots: dict[str, int], include_self: bool = True) -> None:
        self.roots = dict(roots)
        if include_self:
            self.roots["load generator (this process)"] = os.getpid()
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, pid in self.roots.items():
            if name.startswith("load generator"):
                times = os.times()
                out[name] = times.user + times.system  # children (render pools) separate
            else:
                out[name] = cpu_seconds(pid)
        return out

    def start(self) -> None:
        self._start = self._sample()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        self.wall = time.monotonic() - self._t0
        self.used = {k: end[k] - self._start.get(k, 0.0) for k in end}
        return self.used

    def rows(self) -> list[dict[str, Any]]:
        total = sum(self.used.values()) or 1.0
        rows: list[dict[str, Any]] = [
            {
                "component": name,
                "cpu_s": round(used, 2),
                "cores": round(used / self.wall, 2) if self.wall else 0.0,
                "share": f"{100 * used / total:.0f} %",
            }
            for name, used in sorted(self.used.items(), key=lambda kv: -kv[1])
        ]
        rows.append(
            {
                "component": "total",
                "cpu_s": round(sum(self.used.values()), 2),
                "cores": round(sum(self.used.values()) / self.wall, 2) if self.wall else 0.0,
                "share": "100 %",
            }
        )
        return rows


def schedstat(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a process so far, summed
    over its threads (/proc/PID/task/*/schedstat)."""
    run = wait = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0, 0.0
    for tid in tasks:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except OSError:
            continue
        run += int(fields[0])
        wait += int(fields[1])
    return run / 1e9, wait / 1e9


class SchedMeter:
    """How busy a set of processes was between start() and stop(): the fraction of wall time
    each spent on a CPU and runnable-but-waiting (CPU contention), averaged over them."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._start: dict[int, tuple[float, float]] = {}
        self._t0 = 0.0
        self.running = 0.0
        self.waiting = 0.0

    def start(self) -> None:
        self._start = {pid: schedstat(pid) for pid in self.pids}
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._t0
        runs, waits = [], []
        for pid, (run0, wait0) in self._start.items():
            run1, wait1 = schedstat(pid)
            if run1 or wait1:
                runs.append((run1 - run0) / wall)
                waits.append((wait1 - wait0) / wall)
        self.running = sum(runs) / len(runs) if runs else 0.0
        self.waiting = sum(waits) / len(waits) if waits else 0.0
        return {"running": self.running, "waiting_for_cpu": self.waiting, "processes": len(runs)}


def is_render_child(pid: int) -> bool:
    """A render process (an IsolatedRenderer child): its command line names the child module."""
    return CHILD_MODULE in cmdline(pid)


def render_children(root: int) -> list[int]:
    """Render processes (IsolatedRenderer children) in a process tree."""
    return [pid for pid in process_tree(root) if is_render_child(pid)]
