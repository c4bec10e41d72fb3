"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ..settings import Settings
from .deps import Services
from .errors import document_validation_errors, install_error_handlers
from .metrics import MetricsMiddleware
from .routes import console, jobs, ops, renditions
from .server import RefuseWebSockets
from .timeouts import RequestTimeouts
from .upload import FORM_OVERHEAD_BYTES

log = logging.getLogger(__name__)

DESCRIPTION = """Submit images, get thumbnails.

`POST /v1/jobs` stores the upload and queues a job; workers render every requested size
and store it in object storage; `GET /v1/jobs/{id}` reports progress and download URLs.
Every error has the shape `{"error": {"code", "message", "field"}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auth_enabled and not settings.api_keys:
            log.warning(
                "auth is enabled but THUMBNAIL_API_KEYS is empty: every /v1 request "
                "will be rejected with 401"
            )
        services = await Services.start(settings)
        app.state.services = services
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="Thumbnail service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Inside the metrics middleware, so that its 408s and 413s are counted.
    app.add_middleware(
        RequestTimeouts,
        idle_seconds=settings.http_body_idle_timeout_seconds,
        total_seconds=settings.http_body_timeout_seconds,
        max_body_bytes=settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RefuseWebSockets)
    app.include_router(jobs.router)
    app.include_router(ops.router)
    app.include_router(renditions.router)
    if settings.console_enabled:  # off: /console is a 404 like any unknown path
        app.include_router(console.build_router())

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)  # cached by FastAPI
            jobs.document_limits(schema, settings)
            document_validation_errors(schema)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
