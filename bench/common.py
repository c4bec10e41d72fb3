"""Shared plumbing for the benchmarks: machine facts, bounded loops, statistics, results.

Every benchmark prints a Markdown table and writes the same rows as JSON to
`bench/results/<name>.json` (machine facts + the command that produced them), so the numbers
in docs/benchmarks.md can be traced back to a file and a command.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# BENCH_RESULTS_DIR redirects the JSON (the smoke tests use it so they never overwrite the
# recorded results that docs/benchmarks.md quotes).
RESULTS_DIR = Path(
    os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results"
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on (recorded next to every result)."""
    facts: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        import pyvips

        facts["libvips"] = ".".join(str(pyvips.version(i)) for i in range(3))
    except Exception:  # facts are best effort; pyvips is optional here
        pass
    return facts


def progress(message: str) -> None:
    """Long runs say what they are doing (stderr, so stdout stays the table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bounded(rounds: int, budget_seconds: float) -> Iterator[int]:
    """Yield round numbers until `rounds` are done or `budget_seconds` have passed (>= 1 round)."""
    started = time.monotonic()
    for index in range(rounds):
        if index and time.monotonic() - started > budget_seconds:
            return
        yield index


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median and tail percentiles of a sample (same unit as the input)."""
    return {
        "n": len(samples),
        "median": statistics.median(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
    }


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident set size of this process (or of its waited-for children), MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, rows: Sequence[dict[str, Any]], **extra: Any) -> Path:
    """Write `bench/results/<name>.json`: the command, the machine, extra facts, the rows."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        **extra,
        "rows": list(rows),
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    progress(f"results written to {path}")
    return path
