"""Pipeline benchmark: the real stack on loopback vs engine-only vs an HTTP peer.

    python -m bench.pipeline [--workers 1,2] [--jobs 400] [--budget 90] [--quick]

For each worker count N (= concurrent renders: one `thumbnail-worker` with
THUMBNAIL_WORKER_THREADS=N, so N render child processes with the default
THUMBNAIL_RENDER_ISOLATION=process):

1. engine-only: `IsolatedRenderer(N)` (the worker's renderer, same settings and child
   environment) fed by N threads with the same image bytes and options, no I/O;
2. pipeline: API + Redis + worker + MinIO + PostgreSQL; a closed-loop load generator keeps
   `--window` jobs in flight (submitted, not yet finished), each a POST /v1/jobs of a 2 MP
   JPEG with the three default presets; latency = submission start to `succeeded` (the
   job's `finished_at`, read by a watcher polling PostgreSQL);
3. engine-only again (the machine is shared: the mean of the two runs is the reference);
4. the HTTP peers (imgproxy, thumbor; a row says why one is not available) serving the
   same three sizes of the same file with N workers, `--window` jobs (3 requests each) in flight.

Efficiency = pipeline jobs/s (steady state) / engine-only jobs/s. CPU seconds of every
component's process tree (from /proc) show where the two cores went.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from bench.common import markdown_table, progress, summary, write_results
from bench.load import closed_loop
from bench.stack import (
    CpuMeter,
    SchedMeter,
    Servers,
    Stack,
    render_children,
    servers,
    stack,
)
from thumbnail_service import imaging
from thumbnail_service.jobs import JobOptions, Size
from thumbnail_service.rendering.pool import IsolatedRenderer
from thumbnail_service.settings import Settings

SIZES = [("large", 1024, 1024), ("medium", 512, 512), ("small", 128, 128)]


# --- inputs -------------------------------------------------------------------------------


def make_images(megapixels: float) -> tuple[list[bytes], str]:
    """The corpus photo (bench.corpus: the engine benchmark's input) as a baseline JPEG.
    One image, repeated: nothing in the pipeline or the peers caches results."""
    from bench import corpus

    width, height = corpus.dimensions(megapixels)
    source = f"bench.corpus {width}x{height} JPEG Q85 ({corpus.source()})"
    return [corpus.photo_jpeg(megapixels)], source


def render_options(settings: Settings) -> imaging.RenderOptions:
    """What the API stores for a submission without `sizes` (every preset), as the worker
    renders it."""
    sizes = [Size(name=n, width=p.width, height=p.height) for n, p in settings.presets.items()]
    return JobOptions(sizes=sizes).to_render_options()


# --- engine-only --------------------------------------------------------------------------


def engine_only(
    images: list[bytes], workers: int, settings: Settings, total: int, budget: float
) -> dict[str, Any]:
    """`IsolatedRenderer(workers)` driven by `workers` threads: the worker's render path
    without queue, storage or database."""
    options = render_options(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBNAIL_")}
    done: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))
    with IsolatedRenderer(
        workers,
        kill_grace_seconds=settings.render_kill_grace_seconds,
        memory_limit_bytes=settings.render_memory_limit_bytes,
        env=env,
    ) as renderer:

        def one(index: int) -> float:
            t0 = time.perf_counter()
            renderer.render(
                images[index % len(images)],
                options,
                allowed=settings.allowed_format_set,
                max_pixels=settings.max_pixels,
                timeout_seconds=settings.job_timeout_seconds,
            )
            return time.perf_counter() - t0

        for i in range(2 * workers):  # warm-up: children started, first render done
            one(i)
        meter = CpuMeter({"engine (this process + render children)": os.getpid()}, False)
        sched = SchedMeter(renderer.pids)
        sched.start()
        deadline = time.monotonic() + budget

        def loop() -> None:
            while time.monotonic() < deadline:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                took = one(index)
                with lock:
                    done.append(took)

        meter.start()
        threads = [threading.Thread(target=loop) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        meter.stop()
        render_sched = sched.stop()
    rate = len(done) / meter.wall
    lat = summary([d * 1000 for d in done])
    cpu = sum(meter.used.values())
    progress(
        f"engine-only N={workers}: {len(done)} renders, {rate:.1f} jobs/s, "
        f"p50 {lat['p50']:.1f} ms, {cpu / len(done) * 1000:.1f} ms CPU/job"
    )
    return {
        "jobs": len(done),
        "seconds": meter.wall,
        "jobs_per_s": rate,
        "latency_ms": lat,
        "cpu_ms_per_job": cpu / len(done) * 1000,
        "render_processes": render_sched,
    }


def window(args: argparse.Namespace, workers: int) -> int:
    """Jobs in flight: by default two per worker thread (one running, one waiting)."""
    return int(args.window or 2 * workers * args.threads_per_render)


# --- pipeline -----------------------------------------------------------------------------


class Watcher:
    """Resolves a future per job when PostgreSQL shows it finished (polls every `interval`)."""

    def __init__(self, conn: asyncpg.Connection, interval: float) -> None:
        self.conn = conn
        self.interval = interval
        self.pending: dict[UUID, asyncio.Future[tuple[str, float, str | None]]] = {}
        self.queries = 0
        # Per finished job: seconds from row creation to the claim, and claim to finish.
        self.queue_wait: list[float] = []
        self.processing: list[float] = []

    def expect(self, job_id: UUID) -> asyncio.Future[tuple[str, float, str | None]]:
        future = asyncio.get_running_loop().create_future()
        self.pending[job_id] = future
        return future

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.pending:
                rows = await self.conn.fetch(
                    """SELECT id, status::text AS status, created_at, started_at, finished_at, error
                       FROM jobs
                       WHERE id = ANY($1::uuid[]) AND status IN ('succeeded', 'failed')""",
                    list(self.pending),
                )
                self.queries += 1
                for row in rows:
                    future = self.pending.pop(row["id"])
                    finished: datetime = row["finished_at"]
                    if row["started_at"] is not None:
                        started: datetime = row["started_at"]
                        self.queue_wait.append((started - row["created_at"]).total_seconds())
                        self.processing.append((finished - started).total_seconds())
                    if not future.done():
                        future.set_result((row["status"], finished.timestamp(), row["error"]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)


def steady_rate(finished_at: Sequence[float], submitted_at: Sequence[float], window: int) -> float:
    """Steady state: completions from the first full window (the pipeline is full) to the
    last submission (after it the window only drains), per second; 0 with too few."""
    ends = sorted(finished_at)
    last_submit = max(submitted_at) if submitted_at else 0.0
    steady = [t for t in ends[window:] if t <= last_submit]
    return (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 else 0.0


async def drive(
    base_url: str,
    headers: dict[str, str],
    pg: dict[str, Any],
    images: list[bytes],
    *,
    jobs: int,
    window: int,
    budget: float,
    job_timeout: float,
    label: str,
    on_finished: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """The closed loop of submissions against any API (`pg`: asyncpg.connect arguments of its
    database, which the Watcher polls for completions)."""
    conn = await asyncpg.connect(**pg)
    watcher = Watcher(conn, interval=0.02)
    stop = asyncio.Event()
    watch_task = asyncio.create_task(watcher.run(stop))
    limits = httpx.Limits(max_connections=window, max_keepalive_connections=window)
    submit_ms: list[float] = []
    submitted_at: list[float] = []
    finished_at: list[float] = []
    try:
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=60, limits=limits
        ) as http:

            async def one_job(index: int) -> float:
                data = images[index % len(images)]
                t_wall = time.time()
                t0 = time.monotonic()
                response = await http.post(
                    "/v1/jobs", files={"file": (f"img{index}.jpg", data, "image/jpeg")}
                )
                if response.status_code != 202:
                    raise RuntimeError(f"submit: HTTP {response.status_code} {response.text[:100]}")
                submit_ms.append((time.monotonic() - t0) * 1000)
                submitted_at.append(t_wall)
                future = watcher.expect(UUID(response.json()["id"]))
                status, finished, error = await asyncio.wait_for(future, job_timeout)
                if status != "succeeded":
                    raise RuntimeError(f"job {status}: {error}")
                finished_at.append(finished)
                if on_finished is not None:
                    on_finished()
                return finished - t_wall

            result = await closed_loop(
                one_job, total=jobs, concurrency=window, budget_seconds=budget, label=label
            )
    finally:
        stop.set()
        await watch_task
        await conn.close()

    def ms(values: Sequence[float], scale: float = 1.0) -> dict[str, Any]:
        return summary([v * scale for v in values]) if values else {"n": 0}

    return {
        "jobs": len(result.ok),
        "errors": dict(result.errors),
        "seconds": result.wall_seconds,
        "jobs_per_s_overall": result.rate(),
        "jobs_per_s": steady_rate(finished_at, submitted_at, window),
        "latency_ms": ms([o.value for o in result.ok], 1000),
        "submit_ms": ms(submit_ms),
        "queue_wait_ms": ms(watcher.queue_wait, 1000),
        "processing_ms": ms(watcher.processing, 1000),
        "watcher_queries": watcher.queries,
    }


async def drive_pipeline(
    s: Stack, images: list[bytes], **loop: Any
) -> dict[str, Any]:
    """`drive` against the loopback stack."""
    pg = s.servers.postgres
    connect = {"host": pg.host, "port": pg.port, "user": pg.user, "password": pg.password,
               "database": s.database}
    return await drive(s.base_url, s.headers, connect, images, **loop)


def run_pipeline(
    srv: Servers,
    images: list[bytes],
    workers: int,
    args: argparse.Namespace,
    overrides: dict[str, str],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    env = {
        "THUMBNAIL_WORKER_THREADS": str(workers * args.threads_per_render),
        "THUMBNAIL_RENDER_PROCESSES": str(workers),
        **overrides,
    }
    with stack(srv, env) as s:
        s.start_worker()
        progress(f"pipeline N={workers}: warm-up ({4 * workers} jobs)")
        asyncio.run(
            drive_pipeline(
                s,
                images,
                jobs=4 * workers,
                window=window(args, workers),
                budget=60,
                job_timeout=60,
                label="warm-up",
            )
        )
        meter = CpuMeter(s.component_roots())
        sched = SchedMeter(render_children(s.workers[0].pid))
        sched.start()
        profilers = start_profilers(s, args.profile, args.budget) if args.profile else []
        meter.start()
        result = asyncio.run(
            drive_pipeline(
                s,
                images,
                jobs=args.jobs,
                window=window(args, workers),
                budget=args.budget,
                job_timeout=60,
                label=f"pipeline N={workers}",
            )
        )
        meter.stop()
        result["render_processes"] = sched.stop()
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            profiler.wait(timeout=30)
        cpu_total = sum(meter.used.values())
        result["cpu_ms_per_job"] = cpu_total / max(result["jobs"], 1) * 1000
        result["cpu"] = meter.rows()
        result["cores_busy"] = cpu_total / meter.wall
        progress(
            f"pipeline N={workers}: {result['jobs']} jobs, {result['jobs_per_s']:.1f} jobs/s "
            f"steady, p50 {result['latency_ms'].get('p50', 0):.0f} ms (submit "
            f"{result['submit_ms']['p50']:.0f}, queued {result['queue_wait_ms']['p50']:.0f}, "
            f"processing {result['processing_ms']['p50']:.0f}), "
            f"{result['cpu_ms_per_job']:.1f} ms CPU/job"
        )
        return result, meter.rows()


def start_profilers(s: Stack, outdir: str, budget: float) -> list[subprocess.Popen[bytes]]:
    """py-spy on the API and on each worker tree (subprocesses: render children too),
    bounded by the case's time budget; collapsed stacks go to `outdir`."""
    Path(outdir).mkdir(parents=True, exist_ok=True)
    procs = []
    for name, pid in s.component_roots().items():
        if name not in ("api",) and not name.startswith("worker"):
            continue
        out = Path(outdir) / f"{name}-{s.env['THUMBNAIL_WORKER_THREADS']}.txt"
        procs.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(pid),
                    "--subprocesses",
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--duration",
                    str(int(budget) + 30),
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(1)  # attach before the measured window
    return procs


# --- HTTP peer ----------------------------------------------------------------------------


@contextmanager
def _peer(name: str, root: Path, workers: int) -> Iterator[tuple[str, Any]]:
    from bench import peers

    if name == "imgproxy":
        with peers.run_imgproxy(root, workers=workers) as base:
            yield base, peers.imgproxy_url
    else:
        with peers.run_thumbor(root, workers=workers) as base:
            yield base, peers.thumbor_url


def run_peers(images: list[bytes], workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """imgproxy and thumbor, each serving the same three sizes of the same file over HTTP
    with `workers` workers: {name: result} or {name: {"available": False, "reason": ...}}."""
    try:
        from bench import peers
    except ImportError as exc:
        reason = f"bench/peers.py not importable ({exc})"
        return {n: {"available": False, "reason": reason} for n in ("imgproxy", "thumbor")}
    out: dict[str, Any] = {}
    for name in ("imgproxy", "thumbor"):
        if name == "imgproxy" and peers.imgproxy_binary() is None:
            out[name] = {"available": False, "reason": peers.imgproxy_unavailable_reason()}
            continue
        try:
            with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
                root = Path(tmp)
                names = []
                for i, data in enumerate(images):
                    (root / f"img{i}.jpg").write_bytes(data)
                    names.append(f"img{i}.jpg")
                with _peer(name, root, workers) as (base, url_for):
                    result = asyncio.run(_drive_peer(base, url_for, names, workers, args))
                    result.update({"available": True, "peer": name})
                    out[name] = result
        except Exception as exc:  # PeerUnavailable or a peer that fails to start/serve
            out[name] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
    return out


async def _drive_peer(
    base: str, url_for: Any, names: list[str], workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    window = args.window or 2 * workers * args.threads_per_render
    request_ms: list[float] = []
    limits = httpx.Limits(max_connections=3 * window, max_keepalive_connections=3 * window)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one_size(name: str, width: int, height: int) -> None:
            url = url_for(base, name, width, height, "jpeg", 80)
            t0 = time.monotonic()
            response = await http.get(url)
            if response.status_code != 200 or not response.content:
                raise RuntimeError(f"HTTP {response.status_code}")
            request_ms.append((time.monotonic() - t0) * 1000)

        async def one_job(index: int) -> None:
            name = names[index % len(names)]
            await asyncio.gather(*(one_size(name, w, h) for _, w, h in SIZES))

        await closed_loop(
            one_job, total=2 * workers, concurrency=window, budget_seconds=30, label="peer warm-up"
        )
        request_ms.clear()
        result = await closed_loop(
            one_job,
            total=args.jobs,
            concurrency=window,
            budget_seconds=args.budget,
            label="peer",
        )
    return {
        "jobs": len(result.ok),
        "errors": dict(result.errors),
        "jobs_per_s": result.rate(),
        "latency_ms": result.latency_ms(),
        "request_ms": summary(request_ms) if request_ms else {"n": 0},
    }


# --- main ---------------------------------------------------------------------------------



def _row(
    n: int, system: str, jobs: int, rate: float, latency: dict[str, float], engine_rate: float,
    *, cpu_ms_per_job: float | None = None,
) -> dict[str, Any]:
    """One line of the results table: throughput, latency percentiles, ratio to engine-only."""
    row: dict[str, Any] = {
        "N": n, "system": system, "jobs": jobs, "jobs/s": rate, "thumbs/s": 3 * rate,
        "p50 ms": latency.get("p50"), "p95 ms": latency.get("p95"),
        "p99 ms": latency.get("p99"), "ratio": rate / engine_rate,
    }
    if cpu_ms_per_job is not None:
        row["CPU ms/job"] = cpu_ms_per_job
    return row

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--jobs", type=int, default=400, help="max measured jobs per case")
    parser.add_argument("--budget", type=float, default=60, help="max seconds per case")
    parser.add_argument("--window", type=int, default=0, help="jobs in flight (default 2N)")
    parser.add_argument(
        "--threads-per-render",
        type=int,
        default=2,
        help="worker threads per render process (1: every thread owns a render process)",
    )
    parser.add_argument(
        "--vips-concurrency", default="1", help="VIPS_CONCURRENCY of every render process"
    )
    parser.add_argument("--megapixels", type=float, default=2.0)
    parser.add_argument("--no-peer", action="store_true", help="skip the HTTP peer")
    parser.add_argument(
        "--env", action="append", default=[], help="THUMBNAIL_X=Y override for the stack"
    )
    parser.add_argument("--profile", default="", help="py-spy the API and workers into DIR")
    parser.add_argument("--quick", action="store_true", help="N=1 only, 60 jobs, 15 s")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.jobs, args.budget = "1", min(args.jobs, 60), min(args.budget, 15)
    counts = [int(w) for w in args.workers.split(",")]
    overrides = dict(item.split("=", 1) for item in args.env)
    service_overrides = {
        k.removeprefix("THUMBNAIL_").lower(): v
        for k, v in overrides.items()
        if k.startswith("THUMBNAIL_")
    }
    settings = Settings(**service_overrides)

    os.environ["VIPS_CONCURRENCY"] = args.vips_concurrency  # engine-only and the stack
    images, source = make_images(args.megapixels)
    progress(
        f"{len(images)} images from {source}, {statistics.mean(map(len, images)) / 1e3:.0f} kB mean"
    )
    rows: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    engine_budget = min(args.budget, 20)
    # Engine-only runs before the servers start and after they stop, so neither run shares
    # the cores with them (an idle MinIO or PostgreSQL still does background work).
    engine: dict[int, list[dict[str, Any]]] = {}
    for n in counts:
        progress(f"== N={n}: engine-only (before)")
        engine[n] = [engine_only(images, n, settings, args.jobs, engine_budget)]
    pipelines: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    with servers() as srv:
        for n in counts:
            progress(f"== N={n}: pipeline")
            pipelines[n] = run_pipeline(srv, images, n, args, overrides)
    for n in counts:
        progress(f"== N={n}: engine-only (after)")
        engine[n].append(engine_only(images, n, settings, args.jobs, engine_budget))
    sched_rows: list[dict[str, Any]] = []
    for n in counts:
        before, after = engine[n]
        pipe, cpu_rows = pipelines[n]
        engine_rate = (before["jobs_per_s"] + after["jobs_per_s"]) / 2
        skipped: dict[str, Any] = {"available": False, "reason": "skipped (--no-peer)"}
        peers: dict[str, Any] = {"imgproxy": skipped, "thumbor": skipped}
        if not args.no_peer:
            progress(f"== N={n}: HTTP peers")
            peers = run_peers(images, n, args)
        for label, measured in (
            ("engine-only (before)", before),
            ("pipeline", pipelines[n][0]),
            ("engine-only (after)", after),
        ):
            stats = measured["render_processes"]
            sched_rows.append(
                {
                    "N": n,
                    "run": label,
                    "on a CPU": f"{100 * stats['running']:.0f} %",
                    "runnable, waiting for a CPU": f"{100 * stats['waiting_for_cpu']:.0f} %",
                }
            )
        details[f"N={n}"] = {
            "engine_before": before,
            "engine_after": after,
            "pipeline": pipe,
            "peers": peers,
        }
        rows.append(
            _row(n, "engine-only (IsolatedRenderer, no I/O)", before["jobs"] + after["jobs"],
                 engine_rate, before["latency_ms"], engine_rate,
                 cpu_ms_per_job=before["cpu_ms_per_job"])
        )
        rows.append(
            _row(n, "pipeline (API+Redis+worker+MinIO+PG)", pipe["jobs"], pipe["jobs_per_s"],
                 pipe["latency_ms"], engine_rate, cpu_ms_per_job=pipe["cpu_ms_per_job"])
        )
        for peer_name, peer in peers.items():
            if peer.get("available"):
                rows.append(
                    _row(n, f"{peer['peer']} over HTTP (3 requests/job)", peer["jobs"],
                         peer["jobs_per_s"], peer["latency_ms"], engine_rate)
                )
            else:
                rows.append(
                    {
                        "N": n,
                        "system": f"{peer_name} over HTTP: not available: {peer['reason']}",
                    }
                )
        print(f"\nCPU by component, pipeline N={n} (seconds over the measured window)\n")
        print(markdown_table(cpu_rows, ["component", "cpu_s", "cores", "share"]))
    columns = [
        "N",
        "system",
        "jobs",
        "jobs/s",
        "thumbs/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ratio",
        "CPU ms/job",
    ]
    print(
        "\nThroughput (ratio = jobs/s over engine-only jobs/s; latency = submission to "
        "succeeded, engine-only: one render)\n"
    )
    print(markdown_table(rows, columns))
    print(
        "\nRender processes: share of wall time on a CPU and waiting for one (mean per process)\n"
    )
    print(markdown_table(sched_rows, ["N", "run", "on a CPU", "runnable, waiting for a CPU"]))
    write_results(
        "pipeline",
        rows,
        images=source,
        details=details,
        settings_overrides=overrides,
        window=args.window or "2 x worker threads",
        threads_per_render=args.threads_per_render,
        vips_concurrency=args.vips_concurrency,
    )


if __name__ == "__main__":
    main()
