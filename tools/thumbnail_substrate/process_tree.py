"""Reading the process tree from /proc, for tests that prove nothing outlives a teardown."""

from __future__ import annotations

import time
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        # The command name may contain spaces and parentheses: split after its last ")".
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if (
            entry.name.isdigit()
            and (fields := _stat_fields(int(entry.name)))
            and int(fields[1]) == pid
        ):
            found.add(int(entry.name))
    return found


def descendants_of(pid: int) -> set[int]:
    """Children, grandchildren, ...: servers started in their own sessions included."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = set().union(*(children_of(p) for p in frontier)) - found
        found |= frontier
    return found


def living(pids: set[int]) -> set[int]:
    """The ones that still run (zombies waiting to be reaped do not count)."""
    return {p for p in pids if (fields := _stat_fields(p)) is not None and fields[0] != "Z"}


def wait_all_gone(pids: set[int], timeout: float) -> set[int]:
    """Waits until none of `pids` runs; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    while (alive := living(pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive
