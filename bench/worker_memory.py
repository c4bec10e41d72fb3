"""Worker memory stability: RSS of the worker's process tree across >= 5,000 jobs.

    python -m bench.worker_memory [--jobs 5000] [--budget 480] [--interval 1] [--quick]

The real stack (API, Redis, one `thumbnail-worker` with production defaults: 2 threads,
render isolation `process`, so 2 render children; MinIO, PostgreSQL) processes `--jobs` small
JPEGs (the corpus photo at 320x213, three default presets) submitted by the bounded
closed-loop generator. Every `--interval` seconds the RSS of every process of the worker tree
is read from /proc and classified (Dramatiq main process, worker process, sweeper fork,
render children). The trend: RSS after the first 500 jobs vs at the end, and least-squares
slopes (KiB per 1,000 jobs) over jobs 500..end and over the second half.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
from pathlib import Path
from typing import Any

from bench.common import markdown_table, progress, write_results
from bench.pipeline import drive_pipeline
from bench.stack import (
    Stack,
    children_map,
    is_render_child,
    process_tree,
    rss_bytes,
    servers,
    stack,
)

MIB = 2**20


def sample(root: int) -> dict[str, float]:
    """RSS (MiB) of the worker tree by kind: the Dramatiq main process, its worker process
    (the one whose children are render processes), the sweeper fork, the render children."""
    children = children_map()
    out: dict[str, float] = {}
    tree = process_tree(root)
    for pid in tree:
        if is_render_child(pid):
            kind = "render children"
        elif pid == root:
            kind = "dramatiq main"
        elif any(is_render_child(c) for c in children.get(pid, [])):
            kind = "worker process"
        else:
            kind = "sweeper fork"
        out[kind] = out.get(kind, 0.0) + rss_bytes(pid) / MIB
    out["total"] = sum(out.values())
    out["processes"] = float(len(tree))
    return out


def smaps_breakdown(pid: int) -> dict[str, float]:
    """RSS (MiB) of one process by kind of mapping: the brk heap, glibc thread arenas
    (anonymous regions of 60+ MiB), 1 MiB anonymous regions (CPython's object arenas), other
    anonymous memory, thread stacks, and file-backed pages (code, libraries)."""
    out: dict[str, float] = {}
    kind = "file-backed"
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            start, end = (int(x, 16) for x in head[0].split("-"))
            size = end - start
            name = head[5] if len(head) > 5 else ""
            if name == "[heap]":
                kind = "brk heap"
            elif name.startswith("[stack"):
                kind = "stacks"
            elif name:
                kind = "file-backed"
            elif size >= 60 * MIB:
                kind = "thread arenas (64 MiB regions)"
            elif size == MIB:
                kind = "1 MiB regions (CPython arenas)"
            else:
                kind = "other anonymous"
        elif head[0] == "Rss:":
            out[kind] = out.get(kind, 0.0) + int(head[1]) / 1024
    return {k: round(v, 2) for k, v in sorted(out.items())}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope dy/dx (0 with fewer than 3 points)."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def small_jpeg(width: int) -> bytes:
    from bench import corpus

    photo = corpus.photo(2.0)
    return bytes(photo.resize(width / photo.width).jpegsave_buffer(Q=85))


async def run(s: Stack, image: bytes, args: argparse.Namespace) -> dict[str, Any]:
    worker = s.workers[0]
    done = 0
    samples: list[dict[str, float]] = []
    started = time.monotonic()

    def finished() -> None:
        nonlocal done
        done += 1

    smaps: dict[str, dict[str, dict[str, float]]] = {}

    def snapshot(label: str) -> None:
        children = children_map()
        for pid in process_tree(worker.pid):
            if any(is_render_child(c) for c in children.get(pid, [])):
                smaps[label] = {"worker process": smaps_breakdown(pid)}
                kids = [c for c in children.get(pid, []) if is_render_child(c)]
                smaps[label]["first render child"] = smaps_breakdown(kids[0])

    async def sampler(stop: asyncio.Event) -> None:
        while not stop.is_set():
            if done >= 500 and "after 500 jobs" not in smaps:
                snapshot("after 500 jobs")
            row = sample(worker.pid)
            row.update({"jobs": float(done), "seconds": time.monotonic() - started})
            samples.append(row)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.interval)

    stop = asyncio.Event()
    task = asyncio.create_task(sampler(stop))
    try:
        result = await drive_pipeline(
            s,
            [image],
            jobs=args.jobs,
            window=args.window,
            budget=args.budget,
            job_timeout=60,
            label="memory",
            on_finished=finished,
        )
    finally:
        stop.set()
        await task
    snapshot("at the end")
    final = sample(worker.pid)
    final.update({"jobs": float(done), "seconds": time.monotonic() - started})
    samples.append(final)
    result["samples"] = samples
    result["smaps"] = smaps
    return result


def checkpoints(samples: list[dict[str, float]], total: int) -> list[dict[str, Any]]:
    marks = [
        m for m in (0, 500, 1000, 2000, 3000, 4000, 5000, 7500, 10000, 15000, 20000) if m <= total
    ]
    if total not in marks:
        marks.append(total)
    rows = []
    for mark in marks:
        first = next((x for x in samples if x["jobs"] >= mark), samples[-1])
        rows.append(
            {
                "jobs": int(first["jobs"]),
                "seconds": round(first["seconds"], 1),
                **{
                    k: round(v, 1)
                    for k, v in first.items()
                    if k not in ("jobs", "seconds", "processes")
                },
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--budget", type=float, default=480, help="max seconds of load")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--window", type=int, default=8, help="jobs in flight")
    parser.add_argument("--width", type=int, default=320, help="input width (3:2 JPEG)")
    parser.add_argument(
        "--env", action="append", default=[], help="VAR=VALUE for the stack's processes"
    )
    parser.add_argument("--quick", action="store_true", help="600 jobs, 60 s")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.budget = min(args.jobs, 600), min(args.budget, 60)
    image = small_jpeg(args.width)
    progress(f"input: {args.width} px wide JPEG, {len(image) / 1e3:.1f} kB; {args.jobs} jobs")
    overrides = dict(item.split("=", 1) for item in args.env)
    with servers() as srv, stack(srv, overrides) as s:
        s.start_worker()
        result = asyncio.run(run(s, image, args))
        if result["errors"]:
            progress(f"errors: {result['errors']}")
    samples = result.pop("samples")
    smaps = result.pop("smaps")
    done = int(samples[-1]["jobs"])
    start = 500 if done > 1000 else done // 5
    tail = [(x["jobs"], x["total"]) for x in samples if x["jobs"] >= start]
    half = [(x["jobs"], x["total"]) for x in samples if x["jobs"] >= done / 2]
    at_start = next(x for x in samples if x["jobs"] >= start)
    at_end = samples[-1]
    trend = {
        "jobs": done,
        "seconds": round(at_end["seconds"], 1),
        "jobs_per_s": round(done / at_end["seconds"], 1),
        "rss_at_start_mib": round(at_start["total"], 1),
        "start_jobs": int(at_start["jobs"]),
        "rss_at_end_mib": round(at_end["total"], 1),
        "growth_mib": round(at_end["total"] - at_start["total"], 1),
        "peak_mib": round(max(x["total"] for x in samples), 1),
        "slope_kib_per_1000_jobs": round(slope(tail) * 1000 * 1024, 1),
        "slope_second_half_kib_per_1000_jobs": round(slope(half) * 1000 * 1024, 1),
        "processes": int(at_end["processes"]),
    }
    for kind in sorted(k for k in at_end if k not in ("total", "jobs", "seconds", "processes")):
        points = [(x["jobs"], x.get(kind, 0.0)) for x in samples if x["jobs"] >= start]
        trend[f"slope {kind} kib_per_1000_jobs"] = round(slope(points) * 1000 * 1024, 1)
    # Slope per quarter of the run (after the first `start` jobs): a leak keeps its slope,
    # allocator and cache warm-up flattens out.
    bounds = [start + (done - start) * q / 4 for q in range(5)]
    segments = []
    for lo, hi in itertools.pairwise(bounds):
        points = [(x["jobs"], x["total"]) for x in samples if lo <= x["jobs"] <= hi]
        first = next((x for x in samples if x["jobs"] >= lo), samples[-1])
        last = [x for x in samples if x["jobs"] <= hi][-1]
        segments.append(
            {
                "jobs": f"{int(lo)}-{int(hi)}",
                "RSS at start MiB": round(first["total"], 1),
                "RSS at end MiB": round(last["total"], 1),
                "slope KiB/1000 jobs": round(slope(points) * 1000 * 1024, 1),
            }
        )
    trend["segments"] = segments
    rows = checkpoints(samples, done)
    columns = [
        "jobs",
        "seconds",
        "dramatiq main",
        "worker process",
        "sweeper fork",
        "render children",
        "total",
    ]
    print(f"\nWorker tree RSS (MiB) at job counts ({done} jobs, {trend['seconds']} s)\n")
    print(markdown_table(rows, columns))
    print("\nTrend\n")
    print(
        markdown_table(
            [{"metric": k, "value": v} for k, v in trend.items() if k != "segments"],
            ["metric", "value"],
        )
    )
    print("\nSlope by quarter of the run (total worker tree RSS)\n")
    print(markdown_table(segments, list(segments[0])))
    kinds = sorted({k for snap in smaps.values() for v in snap.values() for k in v})
    smaps_rows = [
        {"when": when, "process": proc, **{k: v.get(k) for k in kinds}}
        for when, snap in smaps.items()
        for proc, v in snap.items()
    ]
    if smaps_rows:
        print("\nRSS by kind of mapping (MiB, /proc/PID/smaps)\n")
        print(markdown_table(smaps_rows, ["when", "process", *kinds]))
    write_results(
        "memory",
        rows,
        trend=trend,
        pipeline={k: v for k, v in result.items() if k != "cpu"},
        image_bytes=len(image),
        width=args.width,
        smaps=smaps_rows,
        samples=[{k: round(v, 2) for k, v in x.items()} for x in samples],
    )


if __name__ == "__main__":
    main()
