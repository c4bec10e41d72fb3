"""A bounded, closed-loop async load generator.

`closed_loop(call, total=..., concurrency=..., budget_seconds=...)` keeps exactly
`concurrency` calls in flight until `total` calls were started or `budget_seconds` passed,
then waits for the calls in flight (each bounded by the caller's own timeouts). Every call's
outcome is recorded: start time, latency, success and a short error. Nothing is unbounded:
the count, the time and the number in flight all have limits.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common import progress, summary


@dataclass
class Outcome:
    index: int
    started: float  # time.monotonic() at the start of the call
    latency: float  # seconds
    ok: bool
    error: str | None = None
    value: Any = None


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def errors(self) -> Counter[str]:
        return Counter(o.error or "?" for o in self.outcomes if not o.ok)

    def rate(self) -> float:
        """Successful calls per second over the whole run."""
        return len(self.ok) / self.wall_seconds if self.wall_seconds else 0.0

    def latency_ms(self) -> dict[str, float]:
        samples = [o.latency * 1000 for o in self.ok]
        return summary(samples) if samples else {"n": 0}


async def closed_loop(
    call: Callable[[int], Awaitable[Any]],
    *,
    total: int,
    concurrency: int,
    budget_seconds: float,
    label: str = "load",
    report_every: float = 5.0,
) -> LoadResult:
    """Run `call(i)` for i = 0, 1, ... with `concurrency` in flight; stop starting new calls
    after `total` calls or `budget_seconds`. A call that raises counts as an error."""
    result = LoadResult()
    next_index = 0
    started = time.monotonic()
    deadline = started + budget_seconds
    last_report = started

    async def runner() -> None:
        nonlocal next_index, last_report
        while next_index < total and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            t0 = time.monotonic()
            try:
                value = await call(index)
                result.outcomes.append(Outcome(index, t0, time.monotonic() - t0, True, None, value))
            except Exception as exc:  # recorded, never fatal: the run goes on
                error = f"{type(exc).__name__}: {exc}"[:200]
                result.outcomes.append(Outcome(index, t0, time.monotonic() - t0, False, error))
            now = time.monotonic()
            if now - last_report >= report_every:
                last_report = now
                progress(
                    f"{label}: {len(result.outcomes)}/{total} done, "
                    f"{len(result.outcomes) - len(result.ok)} errors, {now - started:.0f}s"
                )

    await asyncio.gather(*(runner() for _ in range(max(1, min(concurrency, total)))))
    result.wall_seconds = time.monotonic() - started
    if result.errors:
        progress(f"{label}: errors {dict(result.errors.most_common(3))}")
    return result
