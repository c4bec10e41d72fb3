"""Prometheus metrics: HTTP traffic (middleware) plus job and queue gauges (read on scrape)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import DependencyUnavailable
from ..jobs import JobStatus
from .deps import Services

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
HTTP_REQUESTS = Counter(
    "thumbnail_http_requests_total",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "thumbnail_http_request_duration_seconds",
    "HTTP request latency by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
JOBS = Gauge(
    "thumbnail_jobs",
    "Jobs in the database by status (cluster-wide).",
    ["status"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "thumbnail_queue_depth",
    "Messages waiting in Redis: ready to run, or delayed (retries).",
    ["state"],
    registry=REGISTRY,
)
DEPENDENCY_UP = Gauge(
    "thumbnail_dependency_up",
    "1 if the last scrape reached the dependency.",
    ["dependency"],
    registry=REGISTRY,
)
KEY_REQUESTS = Counter(
    "thumbnail_key_requests_total",
    "Authenticated requests by tenant and API key id (never the key), and whether the key's "
    "rate limit let them through.",
    ["tenant", "key_id", "outcome"],
    registry=REGISTRY,
)
SCRAPE_TIMEOUT_SECONDS = 2.0


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The route template (not the raw path) keeps label cardinality bounded.
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


async def refresh_gauges(services: Services) -> None:
    """Update job and queue gauges and one `thumbnail_dependency_up` series per dependency
    (PostgreSQL, Redis, MinIO), concurrently, each within SCRAPE_TIMEOUT_SECONDS; an
    unreachable dependency leaves its other gauges as they were."""

    async def jobs() -> None:
        counts = await services.repository.count_by_status()
        for status in JobStatus:
            JOBS.labels(status.value).set(counts[status])

    async def queue() -> None:
        depth = await services.queue.depth()
        for state, value in depth.items():
            QUEUE_DEPTH.labels(state).set(value)

    async def refresh(name: str, probe: Callable[[], Awaitable[None]]) -> None:
        try:
            await asyncio.wait_for(probe(), SCRAPE_TIMEOUT_SECONDS)
            DEPENDENCY_UP.labels(name).set(1)
        except (DependencyUnavailable, TimeoutError) as exc:
            DEPENDENCY_UP.labels(name).set(0)
            log.debug("metrics: %s not refreshed: %s", name, exc)

    await asyncio.gather(
        refresh("postgresql", jobs),
        refresh("redis", queue),
        refresh("minio", services.storage.ping),  # no gauge of its own: reachability only
    )
