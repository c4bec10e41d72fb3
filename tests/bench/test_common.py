"""The statistics and bookkeeping every benchmark reports through (bench/common.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench import common


def test_percentiles_are_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100
    assert common.percentile(samples, 50) == 50.0
    assert common.percentile(samples, 95) == 95.0
    assert common.percentile(samples, 99) == 99.0
    assert common.percentile(samples, 100) == 100.0
    assert common.percentile([7.0], 99) == 7.0
    assert common.percentile([3.0, 1.0, 2.0], 0) == 1.0  # order of the input does not matter


def test_summary_of_a_skewed_sample() -> None:
    samples = [1.0] * 90 + [10.0] * 10
    result = common.summary(samples)
    assert result["n"] == 100 and result["median"] == 1.0 and result["p50"] == 1.0
    assert result["p95"] == 10.0 and result["p99"] == 10.0


def test_bounded_stops_on_count_and_on_time() -> None:
    assert list(common.bounded(5, 60)) == [0, 1, 2, 3, 4]
    started = time.monotonic()
    done = 0
    for _ in common.bounded(10**9, 0.05):
        done += 1
        time.sleep(0.01)
    assert 1 <= done < 20 and time.monotonic() - started < 1
    assert list(common.bounded(3, 0)) == [0]  # at least one round, whatever the budget


def test_markdown_table_formats_numbers_and_gaps() -> None:
    table = common.markdown_table(
        [{"impl": "ours", "ms": 12.345, "ratio": 0.5}, {"impl": "peer", "ms": 1234.5}],
        ["impl", "ms", "ratio"],
    ).splitlines()
    assert table[0] == "| impl | ms | ratio |"
    assert table[2] == "| ours | 12.3 | 0.5 |"
    assert table[3] == "| peer | 1234 |  |"


def test_results_record_machine_and_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    path = common.write_results("demo", [{"x": 1}], target_met=True)
    document = json.loads(path.read_text())
    assert path == tmp_path / "demo.json"
    assert document["rows"] == [{"x": 1}] and document["target_met"] is True
    assert document["machine"]["cores"] >= 1 and document["machine"]["cpu"]
    assert document["command"]
