"""Operational endpoints: health, metrics and debug information."""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ... import imaging
from ...errors import DependencyUnavailable
from ..auth import require_api_key
from ..deps import Services, get_services
from ..errors import responses
from ..metrics import REGISTRY, refresh_gauges
from ..schemas import DependencyCheck, DetailedHealth, Liveness
from ..workers import workers_health

router = APIRouter(tags=["operations"])
ServicesDep = Annotated[Services, Depends(get_services)]
# A check may take the dependency timeout (THUMBNAIL_DEPENDENCY_TIMEOUT_SECONDS) and a little
# more before the check itself gives up: the dependency's own error names the cause.
CHECK_GRACE_SECONDS = 0.5


@router.get("/healthz", response_model=Liveness, summary="Liveness (no dependency calls)")
async def healthz() -> Liveness:
    return Liveness()


async def _check(probe: Callable[[], Awaitable[None]], limit: float) -> DependencyCheck:
    started = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(probe(), limit + CHECK_GRACE_SECONDS)
    except DependencyUnavailable as exc:
        error = exc.detail
    except TimeoutError:
        error = f"no answer within {limit + CHECK_GRACE_SECONDS:g}s"
    latency = round((time.perf_counter() - started) * 1000, 2)
    return DependencyCheck(status="unavailable" if error else "ok", latency_ms=latency, error=error)


@router.get(
    "/healthz/detailed",
    response_model=DetailedHealth,
    summary="Readiness: PostgreSQL, Redis and MinIO, with latency; live workers",
    description="200 while PostgreSQL, Redis and MinIO answer (the API's readiness). "
    "`workers` says how many worker processes are alive and how old the oldest waiting job "
    "is; with `require_workers=true`, no live worker is a 503 too (for monitors: the API "
    "itself still accepts jobs then, which wait for a worker).",
    responses={
        503: {
            "model": DetailedHealth,
            "description": "At least one dependency is down (or, with require_workers, no "
            "worker is alive); `message` says which.",
        }
    },
)
async def healthz_detailed(
    services: ServicesDep,
    require_workers: Annotated[
        bool, Query(description="Also answer 503 when no worker process is alive.")
    ] = False,
) -> JSONResponse:
    names = ("postgresql", "redis", "minio")
    timeout = services.settings.dependency_timeout_seconds
    results, workers = await asyncio.gather(
        asyncio.gather(
            _check(services.repository.ping, timeout),
            _check(services.queue.ping, timeout),
            _check(services.storage.ping, timeout),
        ),
        workers_health(services),
    )
    checks = dict(zip(names, results, strict=True))
    down = [name for name, check in checks.items() if check.status != "ok"]
    problems = [f"unavailable: {', '.join(down)}"] if down else []
    if workers.status == "none":
        waiting = workers.oldest_queued_job_age_seconds
        problems.append(
            "no live worker: jobs are accepted but not processed"
            + (f" (oldest waiting {waiting:g}s)" if waiting is not None else "")
        )
    failing = bool(down) or (require_workers and workers.status != "ok")
    body = DetailedHealth(
        status="unavailable" if failing else "ok",
        message="; ".join(problems) or "all dependencies reachable",
        checks=checks,
        workers=workers,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if failing else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(services: ServicesDep) -> Response:
    await asyncio.gather(refresh_gauges(services), workers_health(services))
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _version() -> str:
    try:
        return metadata.version("thumbnail-platform")
    except metadata.PackageNotFoundError:
        return "unknown"


@router.get(
    "/debug/info",
    summary="Versions and enabled formats",
    dependencies=[Depends(require_api_key)],
    responses=responses(401),
)
async def debug_info(services: ServicesDep) -> dict[str, Any]:
    settings = services.settings
    return {
        "version": _version(),
        "python": platform.python_version(),
        "libvips": imaging.libvips_version(),
        "formats": imaging.supported_formats(),
        "allowed_input_formats": sorted(f.value for f in settings.allowed_format_set),
        "output_formats": [f.value for f in imaging.OutputFormat],
        "fit_modes": [f.value for f in imaging.FitMode],
        "presets": {k: v.model_dump() for k, v in settings.presets.items()},
    }


@router.get(
    "/debug/config",
    summary="Effective configuration, secrets redacted",
    dependencies=[Depends(require_api_key)],
    responses=responses(401),
)
async def debug_config(services: ServicesDep) -> dict[str, Any]:
    return services.settings.redacted()
