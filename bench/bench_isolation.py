"""Benchmark: render inline vs in an IsolatedRenderer child process (same run, same cases).

Usage: .venv/bin/python bench/bench_isolation.py [--rounds N] [--budget S] [--concurrency C]

The cases are those of bench_imaging.py plus a tiny image (where the fixed cost of the
process hop shows most). Inline and isolated run interleaved round by round; we report
medians and the ratio isolated/inline (> 1.0 is the price of isolation). Every case is
bounded by --rounds and by --budget seconds. Also measured: the time to replace a killed
child (spawn until it is ready to render), which a timed-out or crashed job costs once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import pyvips

from bench_imaging import ALL, Case, cases, photo
from thumbnail_service.imaging import RenderOptions, SizeSpec, libvips_version, render
from thumbnail_service.rendering.pool import IsolatedRenderer


def time_case(
    case: Case, pool: IsolatedRenderer, rounds: int, budget: float
) -> tuple[float, float, int]:
    def inline() -> None:
        render(case.data, case.options, allowed=ALL, max_pixels=10**9, timeout_seconds=60)

    def isolated() -> None:
        pool.render(case.data, case.options, allowed=ALL, max_pixels=10**9, timeout_seconds=60)

    inline()  # warm-up both paths
    isolated()
    times: dict[str, list[float]] = {"inline": [], "isolated": []}
    started = time.perf_counter()
    for _ in range(rounds):
        for name, impl in (("inline", inline), ("isolated", isolated)):
            t0 = time.perf_counter()
            impl()
            times[name].append(time.perf_counter() - t0)
        if time.perf_counter() - started > budget:
            break
    return (
        statistics.median(times["inline"]),
        statistics.median(times["isolated"]),
        len(times["inline"]),
    )


def replacement_seconds(samples: int) -> float:
    """Median time from starting a child to its first (tiny) render returning."""
    tiny = photo(64, 64).write_to_buffer(".jpg", Q=90)
    options = RenderOptions((SizeSpec("t", 32, 32),))
    took = []
    for _ in range(samples):
        t0 = time.perf_counter()
        with IsolatedRenderer(1) as pool:
            pool.render(tiny, options, allowed=ALL, max_pixels=10**6, timeout_seconds=30)
        took.append(time.perf_counter() - t0)
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="max timed rounds per case")
    parser.add_argument("--budget", type=float, default=10.0, help="max seconds per case")
    parser.add_argument("--concurrency", type=int, default=1, help="libvips threads")
    args = parser.parse_args()
    os.environ["VIPS_CONCURRENCY"] = str(args.concurrency)  # children read it at startup
    pyvips.concurrency_set(args.concurrency)
    pyvips.cache_set_max(0)
    print(f"libvips {libvips_version()}, concurrency {args.concurrency}")
    all_cases = [
        Case(
            "64x64 JPEG, 32 px only",
            photo(64, 64).write_to_buffer(".jpg", Q=90),
            RenderOptions((SizeSpec("t", 32, 32),)),
        ),
        *cases(),
    ]
    summary = []
    with IsolatedRenderer(1) as pool:
        for case in all_cases:
            inline_s, isolated_s, n = time_case(case, pool, args.rounds, args.budget)
            summary.append((case.name, inline_s, isolated_s))
            print(
                f"{case.name:<30} inline {inline_s * 1000:7.1f} ms  isolated "
                f"{isolated_s * 1000:7.1f} ms  ratio {isolated_s / inline_s:5.2f}  "
                f"(+{(isolated_s - inline_s) * 1000:.1f} ms, n={n})",
                flush=True,
            )
    respawn = replacement_seconds(5)
    print(f"child replacement (spawn + import + first tiny render): {respawn * 1000:.0f} ms")
    print("\n| case | inline ms | isolated ms | **isolated/inline** | overhead ms |")
    print("|---|---|---|---|---|")
    for name, a, b in summary:
        print(
            f"| {name} | {a * 1000:.1f} | {b * 1000:.1f} | **{b / a:.2f}** | {(b - a) * 1000:.1f} |"
        )


if __name__ == "__main__":
    main()
