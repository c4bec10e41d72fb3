"""Render-isolation benchmark: inline render vs the same render in an IsolatedRenderer child.

    .venv/bin/python -m bench.render_isolation [--quick] [--rounds N] [--budget S]
        [--concurrency C] [--respawns N]

The cases are those of `bench.decode_once` (inputs from `bench.corpus`) plus a tiny JPEG,
where the fixed cost of the process hop shows most. Inline (the baseline) and isolated run
interleaved round by round (rotating the order), bounded by --rounds and --budget seconds
(`bench.common.bounded`), libvips at --concurrency threads in both (VIPS_CONCURRENCY reaches
the child). Reported: medians, the ratio isolated/inline of the same run (> 1.0 is the price
of isolation) and the difference in ms. Also measured: replacing a killed child (spawn until
its first tiny render returns), which a timed-out or crashed job costs once.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import pyvips

from bench import corpus
from bench.common import bounded, markdown_table, progress, summary, write_results
from bench.decode_once import ALL, Case, cases
from thumbnail_service.imaging import RenderOptions, SizeSpec, libvips_version, render
from thumbnail_service.rendering.pool import IsolatedRenderer

BASELINE = "inline"
TINY_MEGAPIXELS = 0.004  # about 78x52
TINY = RenderOptions((SizeSpec("t", 32, 32),))


def all_cases() -> list[Case]:
    tiny = Case("tiny JPEG (78x52), 32 px only", lambda: corpus.photo_jpeg(TINY_MEGAPIXELS), TINY)
    return [tiny, *cases()]


def run_case(
    case: Case, pool: IsolatedRenderer, rounds: int, budget: float
) -> dict[str, Any]:
    data = case.make()
    progress(f"{case.name}: {len(data) / 1e6:.2f} MB input")

    def inline() -> None:
        render(data, case.options, allowed=ALL, max_pixels=10**9, timeout_seconds=60)

    def isolated() -> None:
        pool.render(data, case.options, allowed=ALL, max_pixels=10**9, timeout_seconds=60)

    impls: dict[str, Callable[[], None]] = {BASELINE: inline, "isolated": isolated}
    for impl in impls.values():  # warm-up both paths
        impl()
    times: dict[str, list[float]] = {name: [] for name in impls}
    names = list(impls)
    for index in bounded(rounds, budget):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            impls[name]()
            times[name].append(time.perf_counter() - t0)
    base, ours = summary(times[BASELINE]), summary(times["isolated"])
    row = {
        "case": case.name,
        "inline ms": base["median"] * 1e3,
        "isolated ms": ours["median"] * 1e3,
        f"isolated/{BASELINE}": ours["median"] / base["median"],
        "overhead ms": (ours["median"] - base["median"]) * 1e3,
        "isolated p95 ms": ours["p95"] * 1e3,
        "n": ours["n"],
    }
    progress(f"{case.name}: isolated/{BASELINE} {row[f'isolated/{BASELINE}']:.2f}")
    return row


def replacement_seconds(samples: int) -> float:
    """Median time from starting a child to its first (tiny) render returning."""
    tiny = corpus.photo_jpeg(TINY_MEGAPIXELS)
    took = []
    for _ in range(samples):
        t0 = time.perf_counter()
        with IsolatedRenderer(1) as pool:
            pool.render(tiny, TINY, allowed=ALL, max_pixels=10**6, timeout_seconds=30)
        took.append(time.perf_counter() - t0)
    return summary(took)["median"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 rounds, 1.5 s a case")
    parser.add_argument("--rounds", type=int, default=15, help="max timed rounds per case")
    parser.add_argument("--budget", type=float, default=10.0, help="max seconds per case")
    parser.add_argument("--concurrency", type=int, default=1, help="libvips threads")
    parser.add_argument("--respawns", type=int, default=5, help="child replacements timed")
    parser.add_argument("--results", default="render_isolation", help="bench/results/<name>.json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.budget = min(args.rounds, 3), min(args.budget, 1.5)
        args.respawns = min(args.respawns, 2)
    return args


def main() -> None:
    args = parse_args()
    os.environ["VIPS_CONCURRENCY"] = str(args.concurrency)  # children read it at startup
    pyvips.concurrency_set(args.concurrency)
    pyvips.cache_set_max(0)
    facts: dict[str, Any] = {
        "libvips": libvips_version(),
        "concurrency": args.concurrency,
        "corpus": corpus.source(),
        "baseline": BASELINE,
    }
    progress(f"libvips {facts['libvips']}, concurrency {args.concurrency}, {facts['corpus']}")
    with IsolatedRenderer(1) as pool:
        rows = [run_case(case, pool, args.rounds, args.budget) for case in all_cases()]
    progress(f"timing {args.respawns} child replacements")
    facts["child replacement ms"] = replacement_seconds(args.respawns) * 1e3
    print(markdown_table(rows, list(rows[0])))
    print(
        f"\nchild replacement (spawn + import + first tiny render): "
        f"{facts['child replacement ms']:.0f} ms"
    )
    write_results(args.results, rows, **facts, quick=args.quick)


if __name__ == "__main__":
    main()
