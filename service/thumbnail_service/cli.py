"""Console entry points: thumbnail-api, thumbnail-worker, thumbnail-migrate."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from .logs import configure_logging
from .settings import Settings

log = logging.getLogger(__name__)


def api_main() -> None:
    import uvicorn

    from .api.app import create_app
    from .api.server import HTTP_PROTOCOL
    from .api.timeouts import with_header_timeout

    settings = Settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        # Its own 400s in the API's JSON error shape, and a deadline for request headers.
        http=with_header_timeout(HTTP_PROTOCOL, settings.http_header_timeout_seconds),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


def worker_main() -> None:
    """The supervisor of the worker processes and the sweeper (worker/supervisor.py)."""
    # It hands its processes a metrics directory of its own (worker/metrics.py). An
    # inherited PROMETHEUS_MULTIPROC_DIR would make the supervisor write there itself, from
    # its first import of prometheus_client on.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from .worker.supervisor import main

    main()


def migrate_main() -> None:
    import asyncpg

    from .migrate import apply_migrations
    from .storage import Storage

    settings = Settings()
    configure_logging(settings.log_level)

    async def run() -> None:
        conn = await asyncpg.connect(
            host=settings.database_host,
            port=settings.database_port,
            database=settings.database_name,
            user=settings.database_user,
            password=settings.database_password.get_secret_value() or None,
            timeout=10,
        )
        try:
            applied = await apply_migrations(conn)
        finally:
            await conn.close()
        log.info("database is up to date (%d migration(s) applied now)", len(applied))
        await Storage(settings).ensure_buckets()
        log.info("buckets %s and %s exist", settings.bucket_originals, settings.bucket_thumbnails)

    try:
        asyncio.run(run())
    except Exception as exc:
        log.error("migration failed: %s", exc)
        sys.exit(1)
