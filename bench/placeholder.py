"""The placeholder's cost per job: `render()` of the three default presets with the ThumbHash
step (as shipped) vs the same render with that step switched off (the baseline), interleaved
round by round in one run.

    .venv/bin/python -m bench.placeholder [--quick] [--rounds N] [--budget S]

Inputs are the shared photographic corpus (`bench.corpus`). Reported: median ms of both and
their ratio (what the placeholder adds to a job's render).
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable
from typing import Any

from bench import corpus
from bench.common import bounded, markdown_table, progress, summary, write_results
from thumbnail_service.imaging import ImageFormat, RenderOptions, SizeSpec, render

PRESETS = RenderOptions((SizeSpec("small", 128, 128), SizeSpec("medium", 512, 512),
                         SizeSpec("large", 1024, 1024)))
CASES: dict[str, Callable[[], bytes]] = {
    "2 MP JPEG": lambda: corpus.photo_jpeg(2),
    "12 MP JPEG": lambda: corpus.photo_jpeg(12),
    "2 MP PNG": lambda: corpus.photo_png(2),
}
# The module (the package's `render` is the function of that name).
render_module: Any = importlib.import_module("thumbnail_service.imaging.render")
SHIPPED = render_module._placeholder


def _render_ms(data: bytes, with_placeholder: bool) -> float:
    render_module._placeholder = SHIPPED if with_placeholder else (lambda image: None)
    started = time.perf_counter()
    made = render(data, PRESETS, allowed=frozenset(ImageFormat), max_pixels=10**9,
                  timeout_seconds=60)
    elapsed = (time.perf_counter() - started) * 1000
    assert (made[0].placeholder is not None) is with_placeholder
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 rounds, 10 s per case")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per case")
    args = parser.parse_args()
    rounds, budget = (3, 10.0) if args.quick else (args.rounds, args.budget)
    rows = []
    try:
        for name, make in CASES.items():
            data = make()
            progress(f"{name}: up to {rounds} rounds / {budget:.0f} s")
            timings: dict[bool, list[float]] = {False: [], True: []}
            for index in bounded(rounds, budget):
                order = (False, True) if index % 2 == 0 else (True, False)
                for flag in order:
                    timings[flag].append(_render_ms(data, flag))
            without, with_ = (summary(timings[flag])["median"] for flag in (False, True))
            rows.append({"case": name, "rounds": len(timings[True]),
                         "render ms (no placeholder)": without, "render ms": with_,
                         "ratio": with_ / without, "placeholder ms": with_ - without})
    finally:
        render_module._placeholder = SHIPPED
    columns = ["case", "rounds", "render ms (no placeholder)", "render ms", "ratio",
               "placeholder ms"]
    print(markdown_table(rows, columns))
    write_results("placeholder", rows)


if __name__ == "__main__":
    main()
