"""The benchmarks still run end to end (their --quick mode on the real stack), so `make bench`
cannot rot between recorded runs. Numbers are not asserted beyond "work was measured": a
timed assertion on a shared 2-core machine would be a flaky test, not a benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.services


def _run(module: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = tmp_path.glob("*.json")
    document: dict[str, Any] = json.loads(path.read_text())
    assert document["machine"]["cores"] >= 1 and document["rows"], document
    assert "|---" in done.stdout, "no Markdown table on stdout"
    return document


def test_pipeline_benchmark_runs(tmp_path: Path) -> None:
    document = _run("bench.pipeline", tmp_path, "--no-peer")
    text = json.dumps(document["rows"])
    assert "engine-only" in text and "pipeline" in text, text[:2000]


def test_api_benchmark_runs(tmp_path: Path) -> None:
    document = _run("bench.api_overhead", tmp_path, "--cases", "small,status")
    assert len(document["rows"]) >= 2, document["rows"]


def test_decode_once_benchmark_runs(tmp_path: Path) -> None:
    document = _run("bench.decode_once", tmp_path)
    assert {row["impl"] for row in document["rows"]} >= {"ours", "naive"}, document["rows"]


def test_render_isolation_benchmark_runs(tmp_path: Path) -> None:
    document = _run("bench.render_isolation", tmp_path, "--respawns", "1")
    assert document["child replacement ms"] > 0 and document["rows"], document
