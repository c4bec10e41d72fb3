"""The per-process memory of recent renditions: bounded in bytes and in time."""

from __future__ import annotations

from dataclasses import dataclass

from thumbnail_service.renditions.memory import RecentCache


@dataclass
class Blob:
    size: int


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_least_recently_used_goes_first_and_bytes_stay_bounded() -> None:
    cache: RecentCache[Blob] = RecentCache(100, 60)
    cache.put("a", Blob(40))
    cache.put("b", Blob(40))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", Blob(40))
    assert cache.get("b") is None and cache.get("a") and cache.get("c")
    assert cache.bytes == 80
    cache.put("huge", Blob(101))  # larger than everything: not kept, nothing evicted
    assert cache.get("huge") is None and cache.bytes == 80


def test_entries_expire_and_a_job_is_forgotten_at_once() -> None:
    clock = Clock()
    cache: RecentCache[Blob] = RecentCache(1000, 60, clock)
    cache.put("job1/renditions/x", Blob(1))
    cache.put("job2/renditions/y", Blob(1))
    cache.forget_prefix("job1/")
    assert cache.get("job1/renditions/x") is None and cache.get("job2/renditions/y")
    clock.now = 60
    assert cache.get("job2/renditions/y") is None and cache.bytes == 0


def test_zero_bytes_keeps_nothing() -> None:
    cache: RecentCache[Blob] = RecentCache(0, 60)
    cache.put("a", Blob(1))
    assert cache.get("a") is None
