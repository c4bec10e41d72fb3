"""Work queue: bursts coalesce, one pass at a time per key, failures retried."""

from __future__ import annotations

import asyncio

from thumbnail_operator.controller.workqueue import ResourceKey, WorkQueue


async def test_burst_of_triggers_coalesces_into_few_serial_passes() -> None:
    running: set[ResourceKey] = set()
    passes: list[ResourceKey] = []

    async def work(key: ResourceKey) -> None:
        assert key not in running, "two passes of one key overlapped"
        running.add(key)
        await asyncio.sleep(0.05)
        passes.append(key)
        running.discard(key)

    queue = WorkQueue(work, debounce=0.01, resync_seconds=3600)
    for _ in range(50):
        queue.trigger(("ns", "a"))
        await asyncio.sleep(0.001)
    queue.trigger(("ns", "b"))
    await asyncio.sleep(0.4)
    await queue.stop()
    assert 1 <= passes.count(("ns", "a")) <= 3
    assert passes.count(("ns", "b")) == 1


async def test_failed_pass_is_retried() -> None:
    attempts: list[int] = []

    async def work(key: ResourceKey) -> None:
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("transient")

    queue = WorkQueue(work, debounce=0.0, resync_seconds=3600, max_backoff=0.05)
    queue.trigger(("ns", "a"))
    await asyncio.sleep(0.3)
    await queue.stop()
    assert len(attempts) == 2


async def test_resync_revisits_known_resources_only() -> None:
    seen: list[ResourceKey] = []

    async def work(key: ResourceKey) -> None:
        seen.append(key)

    queue = WorkQueue(work, debounce=0.0, resync_seconds=0.05)
    queue.remember(("ns", "kept"))
    queue.remember(("ns", "gone"))
    queue.forget(("ns", "gone"))
    queue.start()
    await asyncio.sleep(0.18)
    await queue.stop()
    assert seen.count(("ns", "kept")) >= 2
    assert ("ns", "gone") not in seen
