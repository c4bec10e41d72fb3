"""Soak: mixed traffic against the real stack for `--minutes`, a fault every `--fault-every`
seconds; afterwards every accepted job must have finished exactly once.

    python -m bench.soak [--minutes 30] [--fault-every 120] [--seed 1] [--concurrency 8]
                         [--rate 4] [--quick]

The stack is bench.stack's (PostgreSQL, Redis, MinIO, thumbnail-migrate, thumbnail-api, one
thumbnail-worker: its supervisor, 2 worker processes of 1 thread, each with a render child,
and the sweeper), with production recovery settings (job lease 120 s, sweep every 30 s).

Traffic: `--concurrency` async clients, each pausing `--think` seconds (mean, exponential)
between requests. Submissions of a varied corpus (JPEG, progressive JPEG, PNG, WebP of
different sizes; presets, custom sizes, fit, format, quality) are paced at `--rate` per
second (a token bucket, paused while `--max-in-flight` jobs are unfinished); some carry an
Idempotency-Key. A submission answered 503 or not at all is retried (Retry-After honoured,
the same key) for up to 120 s: only a 202 is an accepted job. The rest of the requests are
status polls (round robin over the unfinished jobs, so completions are seen), list pages
(filters, cursors), thumbnail downloads (the body's SHA-256 must equal its ETag; some
conditional, expecting 304), deletes of some finished jobs, and deliberately bad inputs,
each expecting its documented 4xx (one, a truncated JPEG, is accepted and must fail).

Faults, in turn: SIGKILL a worker process (one whose render child is running: likely
mid-job), SIGKILL a render child until one dies mid-job (the render pool logs how a killed
child died; at most 5 kills), SIGSTOP PostgreSQL for `--pause` s,
SIGSTOP MinIO for `--pause` s, restart Redis (down `--redis-down` s: every queued message
lost), SIGKILL the API and start it again (as a kubelet would), FLUSHALL Redis. After each,
recovery is timed from the moment the fault ends (SIGCONT, the restart, the kill): until
/healthz/detailed answers 200 and until a submission is accepted (202). A request
overlapping [fault start, recovery + 1 s] is "in a fault window"; outside them no request
may get a 5xx or no answer.

At the end the traffic stops and every accepted job is awaited (bounded: lease + sweep
interval + 120 s). Checked against PostgreSQL, MinIO and the worker's log: lost (accepted,
never finished or vanished) must be 0; duplicated (a job finished twice in the worker log,
or one Idempotency-Key giving two jobs) must be 0; every succeeded job has exactly its
thumbnails stored; every deleted job is gone from the API, the database and the buckets;
every failed job has a reason the faults or its input explain. Any violation: exit status 1.
RSS, PSS, CPU seconds and open files of every process at the start and the end, sampled every
`--report-every` s in between, go to bench/results/soak.json with everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import os
import random
import re
import signal
import struct
import sys
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis
from minio import Minio

from bench.common import markdown_table, progress, summary, write_results
from bench.stack import (
    CLOCK_TICKS,
    Servers,
    Stack,
    children_map,
    cmdline,
    cpu_seconds,
    is_render_child,
    rss_bytes,
    schedstat,
    servers,
    stack,
)

MIB = 2**20
FINISHED = ("succeeded", "failed")
FAULTS = (
    "worker-process",
    "render-child",
    "postgresql-stop",
    "minio-stop",
    "redis-restart",
    "api-restart",
    "redis-flushall",
)
# The stack: production defaults except two single-threaded worker processes (so a killed
# one has a sibling carrying on, as in tests/service/test_worker_faults_real.py).
SOAK_ENV = {
    "THUMBNAIL_WORKER_PROCESSES": "2",
    "THUMBNAIL_WORKER_THREADS": "1",
}
# --quick: recovery in seconds instead of minutes, so the drain is short too.
QUICK_ENV = {
    "THUMBNAIL_JOB_LEASE_SECONDS": "10",
    "THUMBNAIL_SWEEP_INTERVAL_SECONDS": "2",
}
CLIENT_TIMEOUT_SECONDS = 20.0
SUBMIT_RETRY_SECONDS = 120.0  # a client retries a 503 / unanswered submission this long
RECOVERY_TIMEOUT_SECONDS = 120.0
WINDOW_GRACE_SECONDS = 1.0
# Weights of what a client does when it is not its turn to submit.
ACTIONS = {"status": 50, "list": 10, "download": 25, "delete": 3, "bad input": 2}
JOB_LINE = re.compile(r"job ([0-9a-f-]{36}): (succeeded|failed:)")


# --- the corpus ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    label: str
    data: bytes
    fields: dict[str, str]
    expect: int = 202
    must_fail: bool = False  # accepted, and its job must fail (corrupt data)


@dataclass(frozen=True)
class Corpus:
    good: list[Upload]
    bad: list[Upload]
    probe: Upload


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares width x height: a decompression bomb's header."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def build_corpus() -> Corpus:
    from bench import corpus

    photo = corpus.photo(2.0)

    def scaled(width: int) -> Any:
        return photo.resize(width / photo.width)

    jpeg_03 = bytes(scaled(640).jpegsave_buffer(Q=85))
    jpeg_2 = corpus.photo_jpeg(2.0)
    jpeg_prog = bytes(scaled(1200).jpegsave_buffer(Q=80, interlace=True))
    png = bytes(scaled(800).pngsave_buffer(compression=6))
    webp = bytes(scaled(1200).webpsave_buffer(Q=80))
    tiny = bytes(scaled(96).pngsave_buffer())
    good = [
        Upload("JPEG 0.3 MP, presets", jpeg_03, {}),
        Upload("JPEG 0.3 MP, small WebP", jpeg_03, {"sizes": "small", "format": "webp"}),
        Upload("JPEG 0.3 MP, 200x200 cover Q90", jpeg_03,
               {"sizes": "thumb=200x200", "fit": "cover", "format": "jpeg", "quality": "90"}),
        Upload("JPEG 2 MP, small+medium cover", jpeg_2, {"sizes": "small,medium", "fit": "cover"}),
        Upload("JPEG 2 MP, presets", jpeg_2, {}),
        Upload("progressive JPEG 0.9 MP, 640x480 smart", jpeg_prog,
               {"sizes": "640x480", "fit": "smart"}),
        Upload("PNG 0.4 MP, small PNG", png, {"sizes": "small", "format": "png"}),
        Upload("PNG 0.4 MP, 300x200 smart", png, {"sizes": "300x200", "fit": "smart"}),
        Upload("WebP 0.9 MP, presets Q60", webp, {"quality": "60"}),
        Upload("WebP 0.9 MP, small AVIF", webp, {"sizes": "small", "format": "avif"}),
        Upload("PNG 96 px, presets", tiny, {}),
    ]
    bad = [
        Upload("not an image", b"this is not an image\n" * 40, {}, 415),
        Upload("empty file", b"", {}, 422),
        Upload("fit=bogus", tiny, {"fit": "bogus"}, 422),
        Upload("unknown preset", tiny, {"sizes": "enormous"}, 422),
        Upload("quality=0", tiny, {"quality": "0"}, 422),
        Upload("bomb header 20000x20000", png_header_only(20000, 20000), {}, 422),
        Upload("wrong API key", tiny, {}, 401),
        # No good upload has these options: a reused key is always a different request.
        Upload("Idempotency-Key reused, other upload", tiny, {"sizes": "small", "quality": "55"},
               409),
        Upload("truncated JPEG", jpeg_2[: len(jpeg_2) // 3], {"sizes": "small"}, 202,
               must_fail=True),
    ]
    probe = Upload("probe PNG 96 px", tiny, {"sizes": "small"})
    return Corpus(good, bad, probe)


# --- processes ----------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def own_cpu(pid: int) -> float:
    """CPU seconds of a process and of the children it reaped (utime stime cutime cstime)."""
    fields = _stat(pid)
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS if fields else 0.0


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages divided among their users, so sums add up."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


@dataclass
class Proc:
    """One process of the stack (or a group: PostgreSQL's backends and helpers)."""

    name: str
    component: str
    pids: list[int]


def stack_processes(s: Stack, srv: Servers) -> list[Proc]:
    children = children_map()
    out: list[Proc] = []
    if s.api is not None:
        out.append(Proc("api", "api", [s.api.pid]))
    for worker in s.workers:
        supervisor = worker.pid
        out.append(Proc("worker supervisor", "worker", [supervisor]))
        for pid in sorted(children.get(supervisor, [])):
            line = cmdline(pid)
            if "worker.consumer" in line:
                slot = line.split()[-1]
                out.append(Proc(f"worker process {slot}", "worker", [pid]))
                kids = sorted(k for k in children.get(pid, []) if is_render_child(k))
                for number, kid in enumerate(kids, 1):
                    suffix = f" #{number}" if len(kids) > 1 else ""
                    out.append(Proc(f"render child of {slot}{suffix}", "worker", [kid]))
            elif "worker.sweeper" in line:
                out.append(Proc("sweeper", "worker", [pid]))
            elif line:
                out.append(Proc(f"worker: {line[:40]}", "worker", [pid]))
    for component, server in (("postgresql", srv.postgres), ("redis", srv.redis),
                              ("minio", srv.minio)):
        for managed in server.processes:
            if managed.pid is None or not managed.running:
                continue
            out.append(Proc(component, component, [managed.pid]))
            helpers = sorted(children.get(managed.pid, []))
            if helpers:
                out.append(Proc(f"{component} backends and helpers", component, helpers))
    out.append(Proc("load generator (this process)", "load generator", [os.getpid()]))
    return out


def measure(procs: list[Proc]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for proc in procs:
        live = [p for p in proc.pids if _stat(p) is not None]
        out[proc.name] = {
            "component": proc.component,
            "pid": proc.pids[0] if len(proc.pids) == 1 else None,
            "processes": len(live),
            "rss_mib": round(sum(rss_bytes(p) for p in live) / MIB, 1),
            "pss_mib": round(sum(pss_bytes(p) for p in live) / MIB, 1),
            "cpu_s": round(sum(own_cpu(p) for p in live), 2),
            "fds": sum(fd_count(p) for p in live),
        }
    return out


def running_now(pids: list[int], timeout: float = 15.0) -> int | None:
    """The first of `pids` caught rendering: over 4 ms of CPU in each of two consecutive
    20 ms polls (/proc/PID/task/*/schedstat), so a render well under way rather than the
    tail of one; None if none was within `timeout`."""
    deadline = time.monotonic() + timeout
    last = {p: schedstat(p)[0] for p in pids}
    streak = dict.fromkeys(pids, 0)
    while time.monotonic() < deadline:
        time.sleep(0.02)
        for pid in pids:
            run = schedstat(pid)[0]
            streak[pid] = streak[pid] + 1 if run - last[pid] > 0.004 else 0
            last[pid] = run
            if streak[pid] >= 2:
                return pid
    return None


def consumers(supervisor: int) -> dict[int, str]:
    """Worker processes of a supervisor: pid -> slot name (worker-0, ...)."""
    return {
        pid: cmdline(pid).split()[-1]
        for pid in children_map().get(supervisor, [])
        if "worker.consumer" in cmdline(pid)
    }


def render_children_of(pids: list[int]) -> list[int]:
    children = children_map()
    return [kid for pid in pids for kid in children.get(pid, []) if is_render_child(kid)]


def worker_tree(s: Stack) -> set[int]:
    children = children_map()
    ours: set[int] = set()
    todo = [w.pid for w in s.workers]
    while todo:
        pid = todo.pop()
        ours.add(pid)
        todo.extend(children.get(pid, []))
    return ours


# --- bookkeeping --------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    kind: str
    started: float
    seconds: float
    status: int | None  # None: no answer (connection refused or reset, client timeout)
    expected: bool
    error: str | None = None


@dataclass
class Job:
    id: str
    label: str
    key: str | None
    accepted_at: float
    must_fail: bool = False
    status: str = "queued"
    thumbnails: list[str] = field(default_factory=list)
    etags: dict[str, str] = field(default_factory=dict)
    deleting: bool = False
    deleted: bool = False
    delete_unsure: bool = False


@dataclass
class Fault:
    kind: str
    number: int
    started: float  # monotonic
    started_wall: float
    in_flight: list[str]
    ended: float = 0.0
    ended_wall: float = 0.0
    recovered: float | None = None
    health_after: float | None = None
    submit_after: float | None = None
    detail: str = ""

    def window(self) -> tuple[float, float]:
        end = self.recovered if self.recovered is not None else (
            (self.ended or self.started) + RECOVERY_TIMEOUT_SECONDS
        )
        return self.started, end + WINDOW_GRACE_SECONDS


class Soak:
    def __init__(self, s: Stack, srv: Servers, corpus: Corpus, args: argparse.Namespace) -> None:
        self.s, self.srv, self.corpus, self.args = s, srv, corpus, args
        self.rng = random.Random(args.seed)
        self.jobs: dict[str, Job] = {}
        self.unfinished: deque[str] = deque()
        self.finished: list[str] = []  # finished, not deleted
        self.succeeded: list[str] = []  # succeeded, not deleted
        self.keys: dict[str, set[str]] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.current: Fault | None = None
        self.counters: Counter[str] = Counter()
        self.problems: list[str] = []
        self.cursor: str | None = None
        self.cpu_offsets: dict[str, float] = {}  # CPU seconds of killed incarnations
        self.samples: list[dict[str, Any]] = []
        self.tokens = 0.0
        self.last_token = 0.0
        self.stop_traffic = False
        self.started = 0.0
        self.started_wall = 0.0
        self.traffic_seconds = 0.0
        self.http: httpx.AsyncClient | None = None
        self.renderers_seen: set[int] = set()  # render children of ours, ever
        self.start_processes: dict[str, dict[str, Any]] = {}
        self.start_cpu: dict[str, float] = {}
        self._stopped = asyncio.Event()

    # --- requests ---------------------------------------------------------------------

    def problem(self, message: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(message)
        progress(f"PROBLEM: {message}")

    async def call(
        self, kind: str, method: str, url: str, *, expect: set[int], **kwargs: Any
    ) -> tuple[Call, httpx.Response | None]:
        assert self.http is not None
        t0 = time.monotonic()
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            call = Call(kind, t0, time.monotonic() - t0, None, False, type(exc).__name__)
            self.calls.append(call)
            return call, None
        call = Call(kind, t0, time.monotonic() - t0, response.status_code,
                    response.status_code in expect)
        if not call.expected:
            call.error = response.text[:160]
        self.calls.append(call)
        return call, response

    def take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.tokens + (now - self.last_token) * self.args.rate,
                          max(2.0, self.args.rate))
        self.last_token = now
        if self.tokens >= 1 and len(self.unfinished) < self.args.max_in_flight:
            self.tokens -= 1
            return True
        return False

    def accept(self, response: httpx.Response, upload: Upload, key: str | None) -> Job:
        body = response.json()
        job_id = str(body["id"])
        if key is not None:
            seen = self.keys.setdefault(key, set())
            seen.add(job_id)
            if len(seen) > 1:
                self.problem(f"Idempotency-Key {key} gave two jobs: {sorted(seen)}")
        if job_id in self.jobs:
            self.counters["idempotent replays"] += 1
            return self.jobs[job_id]
        if response.headers.get("idempotent-replayed") == "true":
            # The first answer was lost (the API died, a client timeout): the retry with the
            # same key found the job that request had created.
            self.counters["accepted through a replay"] += 1
        job = Job(job_id, upload.label, key, time.monotonic(), must_fail=upload.must_fail)
        self.jobs[job_id] = job
        self.unfinished.append(job_id)
        self.counters["accepted"] += 1
        return job

    async def submit(self, rng: random.Random, upload: Upload | None = None,
                     kind: str = "submit", key: str | None = None) -> Job | None:
        upload = upload or rng.choice(self.corpus.good)
        if key is None and rng.random() < self.args.keyed:
            key = f"soak-{uuid.UUID(int=rng.getrandbits(128)).hex}"
        headers = {"Idempotency-Key": key} if key else {}
        deadline = time.monotonic() + SUBMIT_RETRY_SECONDS
        while True:
            _, response = await self.call(
                kind, "POST", "/v1/jobs", expect={202}, headers=headers,
                files={"file": ("upload.bin", upload.data)}, data=upload.fields,
            )
            if response is not None and response.status_code == 202:
                return self.accept(response, upload, key)
            if response is not None and response.status_code < 500:
                self.problem(f"{kind} {upload.label!r}: HTTP {response.status_code} "
                             f"{response.text[:160]}")
                return None
            if time.monotonic() > deadline or (self.stop_traffic and kind == "submit"):
                self.counters["submissions given up"] += 1
                return None
            self.counters["submission retries"] += 1
            await asyncio.sleep(retry_after(response))

    def observe(self, job: Job, body: dict[str, Any]) -> None:
        status = str(body["status"])
        if job.status in FINISHED:
            if status != job.status:
                self.problem(f"job {job.id} went from {job.status} to {status}")
            return
        job.status = status
        if status in FINISHED:
            job.thumbnails = [t["name"] for t in body["thumbnails"]]
            self.finished.append(job.id)
            if status == "succeeded" and job.thumbnails:
                self.succeeded.append(job.id)

    async def poll(self, rng: random.Random) -> None:
        if self.unfinished:
            job_id, rotate = self.unfinished.popleft(), True
        elif self.finished:
            job_id, rotate = rng.choice(self.finished), False
        else:
            return
        job = self.jobs[job_id]
        try:
            call, response = await self.call("status", "GET", f"/v1/jobs/{job_id}", expect={200})
            if response is not None and response.status_code == 200:
                self.observe(job, response.json())
            elif response is not None and response.status_code == 404:
                if job.deleting or job.deleted:
                    call.expected = True
                else:
                    self.problem(f"job {job_id} ({job.label}) vanished: GET answered 404")
        finally:
            if rotate and job.status not in FINISHED and not job.deleted:
                self.unfinished.append(job_id)

    async def listing(self, rng: random.Random) -> None:
        params: dict[str, Any] = {"limit": rng.choice((20, 50, 100))}
        if rng.random() < 0.25:
            params["status"] = rng.choice(("queued", "processing", "succeeded", "failed"))
        if self.cursor and rng.random() < 0.3:
            params["cursor"] = self.cursor
        _, response = await self.call("list", "GET", "/v1/jobs", expect={200}, params=params)
        if response is not None and response.status_code == 200:
            self.cursor = response.json().get("next_cursor")

    async def download(self, rng: random.Random) -> None:
        if not self.succeeded:
            return await self.poll(rng)
        job = self.jobs[rng.choice(self.succeeded)]
        name = rng.choice(job.thumbnails)
        headers = {}
        if name in job.etags and rng.random() < 0.3:
            headers["If-None-Match"] = job.etags[name]
        call, response = await self.call(
            "download", "GET", f"/v1/jobs/{job.id}/thumbnails/{name}", expect={200, 304},
            headers=headers,
        )
        if response is None:
            return
        if response.status_code == 200:
            etag = response.headers.get("etag", "")
            if etag.strip('"') != hashlib.sha256(response.content).hexdigest():
                self.problem(f"download {job.id}/{name}: body does not match ETag {etag}")
            job.etags[name] = etag
        elif response.status_code == 404 and (job.deleting or job.deleted):
            call.expected = True
        return None

    async def delete(self, rng: random.Random) -> None:
        """Delete a finished job; a 503 or no answer is retried (the API's contract: the
        row stays so that the call can be retried; storage may be half-cleaned meanwhile,
        so the job counts as going away from the first attempt)."""
        deleted = self.counters["deleted"] + self.counters["deletes unsure"]
        if not self.finished or deleted >= self.args.delete_share * len(self.jobs):
            return await self.poll(rng)
        job = self.jobs[rng.choice(self.finished)]
        if job.deleting or job.key is not None:  # keyed jobs stay: bad inputs reuse the keys
            return None
        job.deleting = True
        self.finished.remove(job.id)
        if job.id in self.succeeded:
            self.succeeded.remove(job.id)
        deadline = time.monotonic() + SUBMIT_RETRY_SECONDS
        while True:
            _, response = await self.call("delete", "DELETE", f"/v1/jobs/{job.id}",
                                          expect={204})
            if response is not None and response.status_code == 204:
                job.deleted = True
                self.counters["deleted"] += 1
                return None
            if response is not None and response.status_code < 500:
                self.problem(f"delete {job.id}: HTTP {response.status_code} "
                             f"{response.text[:160]}")
                return None
            if time.monotonic() > deadline:
                job.delete_unsure = True  # resolved at the end
                self.counters["deletes unsure"] += 1
                return None
            self.counters["delete retries"] += 1
            await asyncio.sleep(retry_after(response))

    async def bad_input(self, rng: random.Random) -> None:
        upload = rng.choice(self.corpus.bad)
        headers: dict[str, str] = {}
        if upload.expect == 401:
            headers["X-API-Key"] = "not-the-key"
        if upload.expect == 409:
            if not self.keys:
                return None
            headers["Idempotency-Key"] = rng.choice(list(self.keys))
        _, response = await self.call(
            "bad input", "POST", "/v1/jobs", expect={upload.expect}, headers=headers,
            files={"file": ("upload.bin", upload.data)}, data=upload.fields,
        )
        self.counters[f"bad input: {upload.label}"] += 1
        if response is not None and response.status_code == 202:
            self.accept(response, upload, None)
            if not upload.must_fail:
                self.problem(f"bad input {upload.label!r} was accepted")
        return None

    async def client(self, number: int) -> None:
        rng = random.Random(self.args.seed * 1000 + number)
        handlers: dict[str, Callable[[random.Random], Awaitable[Any]]] = {
            "status": self.poll, "list": self.listing, "download": self.download,
            "delete": self.delete, "bad input": self.bad_input,
        }
        names, weights = list(ACTIONS), list(ACTIONS.values())
        while not self.stop_traffic:
            try:
                if self.take_token():
                    await self.submit(rng)
                else:
                    await handlers[rng.choices(names, weights)[0]](rng)
            except Exception as exc:  # a bug of this benchmark: counted, the run goes on
                self.counters["client exceptions"] += 1
                if self.counters["client exceptions"] <= 5:
                    progress(f"client {number}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(rng.expovariate(1 / self.args.think))

    # --- faults -----------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Blocking (run in a thread): cause the fault; set `ended` when it stops."""
        kind, s, srv = fault.kind, self.s, self.srv
        if kind == "worker-process":
            # The worker process whose render child is busy: likely mid-job (whether a job was
            # hit shows in the fault table, from PostgreSQL: "retried").
            supervisor = s.workers[0].pid
            slots = consumers(supervisor)
            children = {kid: parent for parent in slots for kid in render_children_of([parent])}
            busy = running_now(list(children))
            victim = children[busy] if busy is not None else self.rng.choice(sorted(slots))
            self.renderers_seen.update(render_children_of([victim]))
            os.kill(victim, signal.SIGKILL)
            fault.ended = time.monotonic()
            slot = slots[victim]
            replaced = wait_seconds(
                lambda: any(n == slot and p != victim for p, n in consumers(supervisor).items()),
                60,
            )
            state = "its render child was running" if busy else "no render running within 15 s"
            fault.detail = f"SIGKILL {slot} (pid {victim}, {state}); replaced after " \
                           f"{fmt(replaced)} s"
        elif kind == "render-child":
            # CPU use is a hint, not proof (a child also runs before and after its job): the
            # pool logs how a killed child died, "mid-job" or "while idle"; up to 5 kills
            # until one died mid-job.
            log = s.workers[0].log
            outcomes: list[str] = []
            for _ in range(5):
                parents = list(consumers(s.workers[0].pid))
                renderers = render_children_of(parents)
                busy = running_now(renderers)
                victim = busy if busy is not None else self.rng.choice(sorted(renderers))
                offset = log.stat().st_size
                os.kill(victim, signal.SIGKILL)
                fault.ended = time.monotonic()
                outcomes.append(died_how(log, offset, victim))
                self.counters["render children killed"] += 1
                if outcomes[-1] == "mid-job":
                    break
            count = len(renderers)
            replaced = wait_seconds(
                lambda: len(set(render_children_of(parents)) - {victim}) >= count, 30
            )
            fault.detail = (f"SIGKILL render child pid {victim}: died {outcomes[-1]} per the "
                            f"worker log (kill {len(outcomes)}"
                            + (f"; the earlier ones died {', '.join(outcomes[:-1])}"
                               if len(outcomes) > 1 else "")
                            + f"); replaced after {fmt(replaced)} s")
        elif kind in ("postgresql-stop", "minio-stop"):
            server = srv.postgres if kind.startswith("postgresql") else srv.minio
            server.pause()
            try:
                time.sleep(self.args.pause)
            finally:
                server.resume()
            fault.ended = time.monotonic()
            fault.detail = f"SIGSTOP {self.args.pause:g} s, then SIGCONT"
        elif kind == "redis-restart":
            # Only the stop: the start is the caller's, on the main thread (see restart_redis).
            for proc in srv.redis.processes:
                if proc.pid is not None:
                    self.cpu_offsets["redis"] = self.cpu_offsets.get("redis", 0.0) + own_cpu(
                        proc.pid)
            srv.redis.stop()
            time.sleep(self.args.redis_down)
        elif kind == "redis-flushall":
            redis.Redis(host=srv.redis.host, port=srv.redis.port, socket_timeout=10).flushall()
            fault.ended = time.monotonic()
            fault.detail = "FLUSHALL: every queued and delayed message lost"
        elif kind == "api-restart":
            assert s.api is not None
            self.cpu_offsets["api"] = self.cpu_offsets.get("api", 0.0) + cpu_seconds(s.api.pid)
            old = s.api.pid
            s.api.kill()
            fault.ended = time.monotonic()
            for attempt in range(3):
                try:
                    s.start_api(timeout=60)
                    break
                except Exception as exc:
                    progress(f"API start {attempt + 1} failed: {exc}")
            fault.detail = (f"SIGKILL the API (pid {old}), started again "
                            f"(pid {s.api.pid}) in {time.monotonic() - fault.ended:.2f} s")
        else:
            raise ValueError(f"unknown fault {kind}")

    def restart_redis(self, fault: Fault) -> None:
        """Start Redis again from the main thread, blocking the event loop for the start
        (~0.1 s, inside the fault window): the substrate's servers get a parent-death signal
        (PR_SET_PDEATHSIG), which fires when the *thread* that forked them exits, so a Redis
        started from an executor thread would die with that thread."""
        began = time.monotonic()
        self.srv.redis.start()
        fault.ended = time.monotonic()
        fault.detail = (f"stopped, down {self.args.redis_down:g} s (every message lost), "
                        f"started again in {fault.ended - began:.2f} s")

    async def recover(self, fault: Fault) -> None:
        """Time from the fault's end to readiness 200 and to an accepted submission."""
        assert self.http is not None
        deadline = fault.ended + RECOVERY_TIMEOUT_SECONDS
        key = f"soak-probe-{fault.number}-{uuid.uuid4().hex[:8]}"
        while time.monotonic() < deadline and (
            fault.health_after is None or fault.submit_after is None
        ):
            if fault.health_after is None:
                with contextlib.suppress(httpx.HTTPError):
                    health = await self.http.get("/healthz/detailed", timeout=10)
                    if health.status_code == 200:
                        fault.health_after = time.monotonic() - fault.ended
            if fault.submit_after is None:
                _, response = await self.call(
                    "probe", "POST", "/v1/jobs", expect={202, 503},
                    headers={"Idempotency-Key": key},
                    files={"file": ("probe.png", self.corpus.probe.data)},
                    data=self.corpus.probe.fields,
                )
                if response is not None and response.status_code == 202:
                    fault.submit_after = time.monotonic() - fault.ended
                    self.accept(response, self.corpus.probe, key)
            await asyncio.sleep(0.1)
        fault.ended_wall = time.time() - (time.monotonic() - fault.ended)
        if fault.health_after is not None and fault.submit_after is not None:
            fault.recovered = fault.ended + max(fault.health_after, fault.submit_after)
        else:
            self.problem(f"fault {fault.number} ({fault.kind}) not recovered within "
                         f"{RECOVERY_TIMEOUT_SECONDS:.0f} s")

    async def inject_faults(self) -> None:
        order = self.args.faults
        end = self.started + self.args.minutes * 60
        for number in itertools.count(1):
            at = self.started + number * self.args.fault_every
            # No fault in the last 20 s: every fault is recovered while traffic still runs.
            if at > end - 20:
                return
            while time.monotonic() < at:
                if self.stop_traffic:
                    return
                await asyncio.sleep(min(1.0, at - time.monotonic()))
            kind = order[(number - 1) % len(order)]
            fault = Fault(kind, number, time.monotonic(), time.time(), list(self.unfinished))
            self.faults.append(fault)
            self.current = fault
            progress(f"fault {number}: {kind} ({len(fault.in_flight)} jobs unfinished)")
            try:
                await asyncio.to_thread(self.inject, fault)
                if kind == "redis-restart":
                    self.restart_redis(fault)
            except Exception as exc:
                fault.ended = fault.ended or time.monotonic()
                fault.detail = f"injection failed: {type(exc).__name__}: {exc}"
                self.problem(f"fault {number} ({kind}): {fault.detail}")
            await self.recover(fault)
            progress(f"fault {number}: {kind}: {fault.detail}; readiness after "
                     f"{fmt(fault.health_after)} s, a submission accepted after "
                     f"{fmt(fault.submit_after)} s")
            self.current = None

    # --- reporting while it runs ------------------------------------------------------

    def sample(self) -> dict[str, Any]:
        listed = stack_processes(self.s, self.srv)
        self.renderers_seen.update(p.pids[0] for p in listed if p.name.startswith("render"))
        procs = measure(listed)
        return {
            "seconds": round(time.monotonic() - self.started, 1),
            # The machine is shared: its load (all processes, not only ours) goes with it.
            "loadavg_1min": float(Path("/proc/loadavg").read_text().split()[0]),
            "accepted": self.counters["accepted"],
            "finished": len(self.finished) + self.counters["deleted"],
            "unfinished": len(self.unfinished),
            "processes": {
                name: {k: v[k] for k in ("pid", "rss_mib", "pss_mib", "fds", "processes")}
                for name, v in procs.items()
            },
        }

    async def report(self) -> None:
        while not self.stop_traffic:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.args.report_every)
            if self.stop_traffic:
                return
            row = await asyncio.to_thread(self.sample)
            self.samples.append(row)
            by_component: Counter[str] = Counter()
            for name, proc in row["processes"].items():
                component = "worker" if name.startswith(("worker", "render", "sweeper")) else name
                component = component.split(" backends")[0]
                by_component[component] += proc["pss_mib"]
            answered_5xx = sum(1 for c in self.calls if c.status is not None and c.status >= 500)
            unanswered = sum(1 for c in self.calls if c.status is None)
            fault = self.current.kind if self.current else "none"
            memory = ", ".join(f"{k} {v:.0f}" for k, v in by_component.items()
                               if not k.startswith("load"))
            progress(
                f"{row['seconds'] / 60:.1f} min: accepted {row['accepted']}, finished "
                f"{row['finished']}, unfinished {row['unfinished']}; {len(self.calls)} requests "
                f"({answered_5xx} 5xx, {unanswered} unanswered); fault now: {fault}; "
                f"PSS MiB: {memory}; load {row['loadavg_1min']:.1f}"
            )

    # --- the run ----------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=self.args.concurrency + 2,
                              max_keepalive_connections=self.args.concurrency + 2)
        async with httpx.AsyncClient(base_url=self.s.base_url, headers=self.s.headers,
                                     timeout=CLIENT_TIMEOUT_SECONDS, limits=limits) as http:
            self.http = http
            await self.warm_up()
            self.start_processes = await asyncio.to_thread(
                lambda: measure(stack_processes(self.s, self.srv)))
            self.start_cpu = component_cpu(self.s, self.srv)
            self.started, self.started_wall = time.monotonic(), time.time()
            self.last_token = self.started
            clients = [asyncio.create_task(self.client(n)) for n in range(self.args.concurrency)]
            faults = asyncio.create_task(self.inject_faults())
            reporter = asyncio.create_task(self.report())
            try:
                await asyncio.sleep(self.args.minutes * 60)
            finally:
                self.stop_traffic = True
                self._stopped.set()
                self.traffic_seconds = time.monotonic() - self.started
                await asyncio.gather(*clients, faults, reporter)
            progress(f"traffic stopped after {self.traffic_seconds / 60:.1f} min: "
                     f"{self.counters['accepted']} jobs accepted, {len(self.calls)} requests")
            return await self.settle()

    async def warm_up(self) -> None:
        """Every good upload once, all finished: the render children exist and have decoded
        each format before the start's memory is measured. These jobs count as accepted;
        their requests do not count as traffic."""
        rng = random.Random(self.args.seed - 1)
        for upload in self.corpus.good:
            await self.submit(rng, upload)
        deadline = time.monotonic() + 120
        while self.unfinished and time.monotonic() < deadline:
            await self.poll(rng)
            await asyncio.sleep(0.05)
        self.calls.clear()
        progress(f"warm-up: {len(self.jobs)} jobs, {len(self.unfinished)} unfinished")

    async def settle(self) -> dict[str, Any]:
        """Wait (bounded) for every accepted job, then read the truth from PostgreSQL and
        check the deleted jobs through the API."""
        pg = self.srv.postgres
        conn = await asyncpg.connect(host=pg.host, port=pg.port, user=pg.user,
                                     password=pg.password, database=self.s.database, timeout=30)
        try:
            ids = [uuid.UUID(j.id) for j in self.jobs.values() if not j.deleted]
            started = time.monotonic()
            deadline = started + self.args.drain
            last = started
            while True:
                waiting = await conn.fetchval(
                    """SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[])
                       AND status IN ('queued', 'processing')""", ids)
                if not waiting or time.monotonic() > deadline:
                    break
                if time.monotonic() - last >= 15:
                    last = time.monotonic()
                    progress(f"drain: {waiting} job(s) unfinished after "
                             f"{last - started:.0f} s (bound {self.args.drain:.0f} s)")
                await asyncio.sleep(1)
            drained = time.monotonic() - started
            progress(f"drain: {waiting} unfinished after {drained:.0f} s")
            rows = await conn.fetch(
                """SELECT id::text AS id, status::text AS status, attempts, error, created_at,
                          started_at, finished_at, idempotency_key FROM jobs""")
            thumbs = await conn.fetch("SELECT job_id::text AS job_id, name FROM thumbnails")
        finally:
            await conn.close()
        assert self.http is not None
        gone: dict[str, int | None] = {}
        for job in self.jobs.values():
            if job.deleted or job.delete_unsure:
                try:
                    response = await self.http.get(f"/v1/jobs/{job.id}")
                    gone[job.id] = response.status_code
                except httpx.HTTPError:
                    gone[job.id] = None
        return {"drain_seconds": drained, "rows": [dict(r) for r in rows],
                "thumbnails": [(r["job_id"], r["name"]) for r in thumbs], "gone": gone}


def retry_after(response: httpx.Response | None) -> float:
    """Seconds before a retry: Retry-After (0.2..5 s), or 1 s without an answer."""
    delay = 1.0
    if response is not None:
        with contextlib.suppress(ValueError):
            delay = float(response.headers.get("retry-after", "1"))
    return min(max(delay, 0.2), 5.0)


def died_how(log: Path, offset: int, pid: int, timeout: float = 5.0) -> str:
    """How the render pool saw child `pid` die ("mid-job", "while idle", ...), from the
    worker log after `offset`; "unnoticed" if it did not say within `timeout`."""
    pattern = re.compile(rf"renderer pid {pid} died (mid-job|while idle|[^:(]+)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with log.open("rb") as f:
            f.seek(offset)
            found = pattern.search(f.read().decode(errors="replace"))
        if found:
            return found.group(1).strip()
        time.sleep(0.1)
    return "unnoticed"


def wait_seconds(check: Callable[[], bool], timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def fmt(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


# --- the verdict --------------------------------------------------------------------------


def list_objects(srv: Servers, bucket: str, written: dict[str, float] | None = None
                 ) -> dict[str, set[str]]:
    """Object names by job id (the first part of the key); `written` gets each job's
    latest object write time."""
    client = Minio(srv.minio.endpoint, access_key=srv.minio.access_key,
                   secret_key=srv.minio.secret_key, secure=False)
    out: dict[str, set[str]] = {}
    for obj in client.list_objects(bucket, recursive=True):
        name = str(obj.object_name)
        job_id, _, rest = name.partition("/")
        out.setdefault(job_id, set()).add(rest)
        if written is not None and obj.last_modified is not None:
            written[job_id] = max(written.get(job_id, 0.0), obj.last_modified.timestamp())
    return out


def log_findings(path: Path) -> dict[str, Any]:
    text = path.read_text(errors="replace") if path.exists() else ""
    errors = [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line]
    return {
        "lines": text.count("\n"),
        "error_lines": len(errors),
        "tracebacks": text.count("Traceback (most recent call last)"),
        "first_errors": errors[:10],
    }


def classify_failure(job: Job | None, error: str) -> str:
    if job is not None and job.must_fail and ("corrupt" in error or "truncated" in error):
        return "expected: truncated input"
    if "crashed" in error and "SIGKILL" in error:
        return "render child SIGKILLed (fault)"
    if error.startswith("gave up after"):
        return "unexplained: retries exhausted"
    if "original image is missing" in error:
        return "unexplained: original missing"
    return "unexplained"


def verdict(soak: Soak, settled: dict[str, Any], s: Stack, srv: Servers) -> dict[str, Any]:
    rows = {r["id"]: r for r in settled["rows"]}
    stored: dict[str, set[str]] = {}
    for job_id, name in settled["thumbnails"]:
        stored.setdefault(job_id, set()).add(name)
    thumb_objects = list_objects(srv, s.env["THUMBNAIL_BUCKET_THUMBNAILS"])
    written: dict[str, float] = {}
    originals = list_objects(srv, s.env["THUMBNAIL_BUCKET_ORIGINALS"], written)
    worker_log = "".join(w.log.read_text(errors="replace") for w in s.workers if w.log.exists())
    finishes = Counter(m.group(1) for m in JOB_LINE.finditer(worker_log))

    lost_unfinished, lost_vanished, storage_mismatch, deleted_not_gone = [], [], [], []
    failures: Counter[str] = Counter()
    failure_examples: dict[str, str] = {}
    succeeded = failed = deleted = 0
    for job in soak.jobs.values():
        if job.delete_unsure:
            job.deleted = settled["gone"].get(job.id) == 404 and job.id not in rows
        if job.deleted:
            deleted += 1
            if (job.id in rows or job.id in thumb_objects or job.id in originals
                    or settled["gone"].get(job.id) != 404):
                deleted_not_gone.append(job.id)
            continue
        row = rows.get(job.id)
        if row is None:
            lost_vanished.append(job.id)
        elif row["status"] not in FINISHED:
            lost_unfinished.append(f"{job.id} ({row['status']}, attempts {row['attempts']})")
        elif row["status"] == "succeeded":
            succeeded += 1
            if thumb_objects.get(job.id, set()) != stored.get(job.id, set()):
                storage_mismatch.append(job.id)
            if job.must_fail:
                failures["expected failure succeeded (truncated JPEG decoded)"] += 1
        else:
            failed += 1
            reason = classify_failure(job, row["error"] or "")
            failures[reason] += 1
            failure_examples.setdefault(reason, f"{job.id}: {row['error']}")
    def when(at: float) -> str:
        """Which fault window (wall clock, 1 s margin) a moment falls in."""
        for fault in soak.faults:
            start, end = fault.window()
            wall = fault.started_wall
            if wall - 1 <= at <= wall + (end - start) + 1:
                return f"during fault {fault.number} ({fault.kind})"
        return f"{at - soak.started_wall:.1f} s into the soak, outside faults"

    # Jobs in the database that no client was given (a 202 lost with a killed API or a
    # client timeout; or a submission answered 503 whose INSERT still committed).
    unacknowledged = [
        {"id": job_id, "status": r["status"], "error": r["error"],
         "created": when(r["created_at"].timestamp())}
        for job_id, r in rows.items() if job_id not in soak.jobs
    ]
    unacked_unfinished = [u["id"] for u in unacknowledged if u["status"] not in FINISHED]
    phantoms = [u for u in unacknowledged if u["status"] == "failed"]
    duplicated = {job_id: n for job_id, n in finishes.items() if n > 1}
    key_dups = {k: sorted(v) for k, v in soak.keys.items() if len(v) > 1}
    orphans = [f"{o} written {when(written.get(o, 0.0))}"
               for o in sorted(set(originals) - set(rows))]

    finished_rows = [r for r in rows.values() if r["status"] in FINISHED]
    no_log_line = [r["id"] for r in finished_rows if r["id"] not in finishes]

    def ms(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"n": 0}
        return {**{k: round(v, 1) for k, v in summary(values).items()}, "max": round(max(values))}

    done = [r for r in finished_rows if r["status"] == "succeeded" and r["started_at"]]
    job_latency = ms([(r["finished_at"] - r["created_at"]).total_seconds() * 1000 for r in done])
    queue_wait = ms([(r["started_at"] - r["created_at"]).total_seconds() * 1000 for r in done])
    attempts = Counter(int(r["attempts"]) for r in finished_rows)

    problems = list(soak.problems)
    if lost_unfinished or lost_vanished:
        problems.append(f"lost: {len(lost_unfinished)} never finished "
                        f"{lost_unfinished[:5]}, {len(lost_vanished)} vanished "
                        f"{lost_vanished[:5]}")
    if unacked_unfinished:
        problems.append(f"{len(unacked_unfinished)} unacknowledged jobs never finished: "
                        f"{unacked_unfinished[:5]}")
    if phantoms:
        problems.append(f"{len(phantoms)} job(s) created though no client was given a 202, "
                        f"then failed: {phantoms[:5]}")
    if duplicated:
        problems.append(f"duplicated (finished more than once in the worker log): "
                        f"{dict(list(duplicated.items())[:5])}")
    if key_dups:
        problems.append(f"one Idempotency-Key, several jobs: {dict(list(key_dups.items())[:3])}")
    if storage_mismatch:
        problems.append(f"{len(storage_mismatch)} succeeded jobs whose stored thumbnails "
                        f"differ from the job: {storage_mismatch[:5]}")
    if deleted_not_gone:
        problems.append(f"{len(deleted_not_gone)} deleted jobs still visible or stored: "
                        f"{deleted_not_gone[:5]}")
    for reason, count in failures.items():
        if reason.startswith("unexplained"):
            problems.append(f"{count} job(s) failed, {reason}; e.g. {failure_examples[reason]}")
    render_kills = soak.counters["render children killed"]
    if failures["render child SIGKILLed (fault)"] > render_kills:
        problems.append(f"{failures['render child SIGKILLed (fault)']} jobs failed with a "
                        f"killed render child, but only {render_kills} were killed")
    return {
        "accepted": len(soak.jobs),
        "succeeded": succeeded,
        "failed": failed,
        "deleted": deleted,
        "lost": len(lost_unfinished) + len(lost_vanished),
        "lost_jobs": {"never finished": lost_unfinished[:20], "vanished": lost_vanished[:20]},
        "duplicated": len(duplicated) + len(key_dups),
        "failures": dict(failures),
        "failure_examples": failure_examples,
        "unacknowledged_jobs": len(unacknowledged),
        "unacknowledged_unfinished": len(unacked_unfinished),
        "unacknowledged": unacknowledged[:50],
        "orphaned_originals": len(orphans),
        "orphaned_original_examples": orphans[:10],
        # Not fatal (no job is affected) but a leak: reported with the findings.
        "findings": [f"{len(orphans)} original(s) stored without a job row: {orphans[:5]}"]
        if orphans else [],
        "finished_without_log_line": len(no_log_line),
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "job_latency_ms": job_latency,
        "queue_wait_ms": queue_wait,
        "drain_seconds": round(settled["drain_seconds"], 1),
        "problems": problems,
        "rows_by_id": rows,
    }


def request_table(soak: Soak) -> list[dict[str, Any]]:
    windows = [f.window() for f in soak.faults]

    def in_window(c: Call) -> bool:
        return any(c.started < end and c.started + c.seconds > start for start, end in windows)

    kinds = ["submit", "status", "list", "download", "delete", "bad input", "probe"]
    rows = []
    for kind in kinds:
        calls = [c for c in soak.calls if c.kind == kind]
        if not calls:
            continue
        inside = [in_window(c) for c in calls]
        answered = [c.seconds * 1000 for c in calls if c.status is not None]
        quiet = [c.seconds * 1000 for c, w in zip(calls, inside, strict=True)
                 if c.status is not None and not w]
        lat = summary(answered) if answered else {}
        quiet_lat = summary(quiet) if quiet else {}

        def count(pred: Callable[[Call], bool], window: bool | None = None,
                  calls: list[Call] = calls, inside: list[bool] = inside) -> int:
            return sum(1 for c, w in zip(calls, inside, strict=True)
                       if pred(c) and (window is None or w == window))

        rows.append({
            "kind": kind,
            "requests": len(calls),
            "req/s": len(calls) / soak.traffic_seconds if soak.traffic_seconds else 0.0,
            "expected": count(lambda c: c.expected),
            "4xx unexpected": count(lambda c: c.status is not None and 400 <= c.status < 500
                                    and not c.expected),
            "5xx in faults": count(lambda c: c.status is not None and c.status >= 500, True),
            "5xx outside": count(lambda c: c.status is not None and c.status >= 500, False),
            "no answer in faults": count(lambda c: c.status is None, True),
            "no answer outside": count(lambda c: c.status is None, False),
            "p50 ms": lat.get("p50"),
            "p95 ms": lat.get("p95"),
            "p99 ms": lat.get("p99"),
            "p99 ms outside faults": quiet_lat.get("p99"),
            "statuses": dict(Counter(str(c.status) for c in calls)),
        })
    return rows


def fault_rows(soak: Soak, rows_by_id: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per fault: its recovery, and the jobs it hit according to PostgreSQL (created before
    the fault ended, not finished before it started) and when the last of them finished."""
    out = []
    for fault in soak.faults:
        hit: list[dict[str, Any]] = []
        for row in rows_by_id.values():
            created, finished = row["created_at"].timestamp(), row["finished_at"]
            if created <= fault.ended_wall and (
                finished is None or finished.timestamp() >= fault.started_wall
            ):
                hit.append(row)
        unfinished = [r for r in hit if r["finished_at"] is None]
        # (0 when they had all finished by the end of the fault)
        last = (max(0.0, max(r["finished_at"].timestamp() for r in hit) - fault.ended_wall)
                if hit and not unfinished else None)
        start, end = fault.window()
        calls = [c for c in soak.calls if start <= c.started < end]
        out.append({
            "#": fault.number,
            "fault": fault.kind,
            "at min": round((fault.started - soak.started) / 60, 1),
            "lasted s": round(fault.ended - fault.started, 2),
            "ready after s": none_round(fault.health_after),
            "submit 202 after s": none_round(fault.submit_after),
            "jobs in flight": len(hit),
            "retried": sum(1 for r in hit if int(r["attempts"]) > 1),
            "last of them finished after s": none_round(last, 1),
            "5xx": sum(1 for c in calls if c.status is not None and c.status >= 500),
            "no answer": sum(1 for c in calls if c.status is None),
            "detail": fault.detail,
        })
    return out


def none_round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def process_rows(start: dict[str, dict[str, Any]], end: dict[str, dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    rows = []
    for name in [*start, *(n for n in end if n not in start)]:
        a, b = start.get(name, {}), end.get(name, {})

        def pid(x: dict[str, Any]) -> str:
            if not x:
                return "-"
            return str(x["pid"]) if x["pid"] is not None else f"{x['processes']} procs"

        rows.append({
            "process": name,
            "pid start": pid(a),
            "pid end": pid(b),
            "RSS MiB start": a.get("rss_mib"),
            "RSS MiB end": b.get("rss_mib"),
            "PSS MiB start": a.get("pss_mib"),
            "PSS MiB end": b.get("pss_mib"),
            "CPU s start": a.get("cpu_s"),
            "CPU s end": b.get("cpu_s"),
            "fds start": a.get("fds"),
            "fds end": b.get("fds"),
        })
    return rows


def trend_rows(soak: Soak, start: dict[str, Any], end: dict[str, Any]) -> list[dict[str, Any]]:
    """PSS by component every ~5 minutes (and at both ends)."""
    points = [{"seconds": 0.0, "processes": start}, *soak.samples,
              {"seconds": round(soak.traffic_seconds, 1), "processes": end}]
    step = 300 if soak.args.minutes >= 15 else 60
    picked, next_at = [], 0.0
    for point in points:
        if point["seconds"] >= next_at or point is points[-1]:
            picked.append(point)
            next_at = point["seconds"] + step - soak.args.report_every / 2
    rows = []
    for point in picked:
        row: dict[str, Any] = {"min": round(point["seconds"] / 60, 1)}
        for name, proc in point["processes"].items():
            component = proc.get("component") or component_of(name)
            row[component] = round(row.get(component, 0.0) + proc["pss_mib"], 1)
        rows.append(row)
    return rows


def component_of(name: str) -> str:
    if name.startswith(("worker", "render", "sweeper")):
        return "worker"
    if name.startswith("load generator"):
        return "load generator"
    return name.split(" backends")[0]


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30, help="traffic duration")
    parser.add_argument("--fault-every", type=float, default=120, help="seconds between faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8, help="clients")
    parser.add_argument("--rate", type=float, default=4.0, help="submissions per second")
    parser.add_argument("--think", type=float, default=0.1,
                        help="mean pause of a client between requests, s")
    parser.add_argument("--max-in-flight", type=int, default=200,
                        help="no submissions while this many jobs are unfinished")
    parser.add_argument("--keyed", type=float, default=0.3,
                        help="share of submissions with an Idempotency-Key")
    parser.add_argument("--delete-share", type=float, default=0.05,
                        help="delete up to this share of the accepted jobs")
    parser.add_argument("--pause", type=float, default=10, help="SIGSTOP duration, s")
    parser.add_argument("--redis-down", type=float, default=5, help="Redis downtime, s")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"fault cycle, any of {','.join(FAULTS)}")
    parser.add_argument("--report-every", type=float, default=30, help="progress lines, s")
    parser.add_argument("--drain", type=float, default=0,
                        help="max wait for unfinished jobs at the end, s (0: lease + sweep "
                        "interval + 120)")
    parser.add_argument("--env", action="append", default=[],
                        help="VAR=VALUE for the stack's processes")
    parser.add_argument("--quick", action="store_true",
                        help="2.5 minutes, a fault every 15 s, lease 10 s, sweep every 2 s")
    parser.add_argument("--results", default="soak", help="bench/results/NAME.json")
    args = parser.parse_args()
    overrides = dict(SOAK_ENV)
    if args.quick:
        args.minutes, args.fault_every = min(args.minutes, 2.5), min(args.fault_every, 15)
        args.pause, args.redis_down = min(args.pause, 4), min(args.redis_down, 2)
        overrides.update(QUICK_ENV)
    overrides.update(dict(item.split("=", 1) for item in args.env))
    args.faults = [f for f in args.faults.split(",") if f]
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {sorted(unknown)}")
    from thumbnail_service.settings import Settings

    settings_env: dict[str, Any] = {k.removeprefix("THUMBNAIL_").lower(): v
                                    for k, v in overrides.items() if k.startswith("THUMBNAIL_")}
    settings = Settings(**settings_env)
    if not args.drain:
        args.drain = settings.job_lease_seconds + settings.sweep_interval_seconds + 120
    corpus = build_corpus()
    progress(f"corpus: {len(corpus.good)} uploads ({', '.join(u.label for u in corpus.good)}), "
             f"{len(corpus.bad)} bad inputs")
    progress(f"soak: {args.minutes:g} min, a fault every {args.fault_every:g} s "
             f"({', '.join(args.faults)}), {args.concurrency} clients, {args.rate:g} "
             f"submissions/s; lease {settings.job_lease_seconds:g} s, sweep every "
             f"{settings.sweep_interval_seconds:g} s, drain bound {args.drain:g} s")
    with servers() as srv, stack(srv, overrides, keep_logs=True) as s:
        s.start_worker({"THUMBNAIL_LOG_LEVEL": "INFO"})  # "job X: succeeded" lines
        soak = Soak(s, srv, corpus, args)
        settled = asyncio.run(soak.run())
        start, start_cpu = soak.start_processes, soak.start_cpu
        end = measure(stack_processes(s, srv))
        end_cpu = component_cpu(s, srv)
        tree = worker_tree(s)
        strays = sorted(p for p in soak.renderers_seen if p not in tree and is_render_child(p))
        result = verdict(soak, settled, s, srv)
        logs = {"api": log_findings(s.logdir / "api.log"),
                "worker": log_findings(s.workers[0].log)}
        logdir = s.logdir
    rows_by_id = result.pop("rows_by_id")
    requests = request_table(soak)
    faults = fault_rows(soak, rows_by_id)
    processes = process_rows(start, end)
    trend = trend_rows(soak, start, end)
    used = {name: end_cpu.get(name, 0.0) + soak.cpu_offsets.get(name, 0.0) - before
            for name, before in start_cpu.items()}
    cpu = [
        {"component": name,
         "CPU s": round(used[name], 1),
         "cores": round(used[name] / (soak.traffic_seconds or 1), 2)}
        for name in start_cpu
    ]
    if strays:
        result["problems"].append(f"{len(strays)} render processes outside the worker tree "
                                  f"at the end: {strays[:5]}")
    for kind in requests:
        if kind["5xx outside"] or kind["no answer outside"] or kind["4xx unexpected"]:
            result["problems"].append(
                f"{kind['kind']}: {kind['5xx outside']} 5xx and {kind['no answer outside']} "
                f"unanswered outside fault windows, {kind['4xx unexpected']} unexpected 4xx")
    summary_rows: list[dict[str, Any]] = [
        {"figure": "traffic", "value": f"{soak.traffic_seconds / 60:.1f} min, "
         f"{len(soak.calls)} requests ({len(soak.calls) / soak.traffic_seconds:.1f}/s)"},
        {"figure": "faults", "value": len(soak.faults)},
        {"figure": "jobs accepted (202)", "value": result["accepted"]},
        {"figure": "completed: succeeded", "value": result["succeeded"]},
        {"figure": "completed: failed", "value": f"{result['failed']} {result['failures']}"},
        {"figure": "deleted by the clients", "value": result["deleted"]},
        {"figure": "lost", "value": result["lost"]},
        {"figure": "duplicated", "value": result["duplicated"]},
        {"figure": "accepted but never acknowledged (response lost)",
         "value": f"{result['unacknowledged_jobs']} ({result['unacknowledged_unfinished']} "
         f"unfinished, {sum(u['status'] == 'failed' for u in result['unacknowledged'])} "
         "failed)"},
        {"figure": "submission retries (503 / no answer)",
         "value": soak.counters["submission retries"]},
        {"figure": "submissions given up", "value": soak.counters["submissions given up"]},
        {"figure": "delete retries (503 / no answer)", "value": soak.counters["delete retries"]},
        {"figure": "idempotent replays", "value": soak.counters["idempotent replays"]},
        {"figure": "accepted through a replay",
         "value": soak.counters["accepted through a replay"]},
        {"figure": "jobs/s completed",
         "value": round((result["succeeded"] + result["failed"] + result["deleted"])
                        / soak.traffic_seconds, 2)},
        {"figure": "job latency ms (created->finished, succeeded)",
         "value": result["job_latency_ms"]},
        {"figure": "attempts per finished job", "value": result["attempts"]},
        {"figure": "drain after the traffic, s", "value": result["drain_seconds"]},
        {"figure": "orphaned originals (no job row)", "value": result["orphaned_originals"]},
        {"figure": "API log: ERROR lines / tracebacks",
         "value": f"{logs['api']['error_lines']} / {logs['api']['tracebacks']}"},
        {"figure": "worker log: ERROR lines / tracebacks",
         "value": f"{logs['worker']['error_lines']} / {logs['worker']['tracebacks']}"},
    ]
    print(f"\nSoak: {args.minutes:g} min, a fault every {args.fault_every:g} s, "
          f"{args.concurrency} clients, {args.rate:g} submissions/s (seed {args.seed})\n")
    print(markdown_table(summary_rows, ["figure", "value"]))
    print("\nRequests (latency of answered requests; windows: fault start to recovery + 1 s)\n")
    print(markdown_table(requests, [
        "kind", "requests", "req/s", "expected", "4xx unexpected", "5xx in faults",
        "5xx outside", "no answer in faults", "no answer outside", "p50 ms", "p95 ms",
        "p99 ms", "p99 ms outside faults"]))
    print("\nFaults (times from the fault's end: SIGCONT, restart, kill)\n")
    print(markdown_table(faults, list(faults[0]) if faults else ["#"]))
    print("\nProcesses at the start and the end (CPU s: the process and its reaped children)\n")
    print(markdown_table(processes, list(processes[0])))
    print("\nCPU by component over the soak (killed incarnations included)\n")
    print(markdown_table(cpu, ["component", "CPU s", "cores"]))
    print("\nPSS MiB by component over time\n")
    columns = ["min", *[c for c in trend[-1] if c != "min"]]
    print(markdown_table(trend, columns))
    problems = result["problems"]
    print(f"\nProblems: {len(problems)}")
    for item in problems:
        print(f"- {item}")
    print(f"\nFindings (not fatal): {len(result['findings'])}")
    for item in result["findings"]:
        print(f"- {item}")
    write_results(
        args.results,
        summary_rows,
        args={k: v for k, v in vars(args).items()},
        env=overrides,
        verdict=result,
        requests=requests,
        faults=faults,
        processes=processes,
        cpu=cpu,
        trend=trend,
        samples=soak.samples,
        counters=dict(soak.counters),
        logs=logs,
        logdir=str(logdir),
        passed=not problems,
    )
    if problems:
        progress(f"FAILED: {len(problems)} problem(s); logs in {logdir}")
        sys.exit(1)


def component_cpu(s: Stack, srv: Servers) -> dict[str, float]:
    """CPU seconds of each component's process tree (reaped children included)."""
    out: dict[str, float] = {}
    if s.api is not None:
        out["api"] = cpu_seconds(s.api.pid)
    out["worker"] = sum(cpu_seconds(w.pid) for w in s.workers)
    for name, server in (("postgresql", srv.postgres), ("redis", srv.redis),
                         ("minio", srv.minio)):
        out[name] = sum(cpu_seconds(p.pid) for p in server.processes if p.pid is not None)
    times = os.times()
    out["load generator"] = times.user + times.system
    return out


if __name__ == "__main__":
    main()
