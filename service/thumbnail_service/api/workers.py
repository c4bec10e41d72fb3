"""Is anything processing jobs? Live worker processes (their heartbeats in Redis), the backlog
and its oldest job, the recent throughput and the pending work's cost (PostgreSQL), for
/healthz/detailed (the operator's status and autoscaler) and /metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from prometheus_client import Gauge

from ..errors import DependencyUnavailable
from ..repository import Demand
from .deps import Services
from .metrics import REGISTRY
from .schemas import FormatDemand, WorkDemand, WorkersHealth

log = logging.getLogger(__name__)
T = TypeVar("T")

WORKERS_ALIVE = Gauge(
    "thumbnail_workers_alive",
    "Worker processes whose last heartbeat is fresh (left as it was while Redis is "
    "unreachable).",
    registry=REGISTRY,
)
OLDEST_QUEUED_AGE = Gauge(
    "thumbnail_oldest_queued_job_age_seconds",
    "Age of the oldest job waiting in `queued`; 0 when none waits.",
    registry=REGISTRY,
)


async def _known(call: Awaitable[T], limit: float) -> tuple[bool, T | None]:
    try:
        return True, await asyncio.wait_for(call, limit)
    except (DependencyUnavailable, TimeoutError) as exc:
        log.debug("workers health: %s", exc)
        return False, None


async def workers_health(services: Services) -> WorkersHealth:
    """Also updates the two gauges (when their source answered)."""
    limit = services.settings.dependency_timeout_seconds + 0.5
    (alive_known, alive), (_, queue), (_, demand) = await asyncio.gather(
        _known(services.queue.live_workers(), limit),
        _known(services.repository.queue_state(), limit),
        _known(services.repository.demand(), limit),
    )
    if alive_known and alive is not None:
        WORKERS_ALIVE.set(alive)
    if queue is not None:
        OLDEST_QUEUED_AGE.set(queue.oldest_age_seconds or 0.0)
    age = None if queue is None else queue.oldest_age_seconds
    return WorkersHealth(
        status="unknown" if not alive_known else "ok" if alive else "none",
        alive=alive,
        oldest_queued_job_age_seconds=None if age is None else round(age, 1),
        oldest_queued_job_since=None if queue is None else queue.oldest_since,
        queued_jobs=None if queue is None else queue.queued,
        jobs_finished_last_5m=None if queue is None else queue.finished_recently,
        demand=None if demand is None else _demand(demand),
    )


def _demand(demand: Demand) -> WorkDemand:
    return WorkDemand(
        formats=[
            FormatDemand(
                format=f.format,
                pending_jobs=f.pending_jobs,
                pending_megapixel_renders=round(f.pending_units, 3),
                sampled_jobs=f.sampled_jobs,
                render_seconds_per_megapixel_render=(
                    None if f.seconds_per_unit is None else round(f.seconds_per_unit, 5)),
            )
            for f in demand.formats
        ],
        overhead_seconds_per_job=(None if demand.overhead_seconds_per_job is None
                                  else round(demand.overhead_seconds_per_job, 3)),
    )
