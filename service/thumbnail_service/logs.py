"""Logging setup shared by every entry point."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )
    # Secrets never go into URLs we log, but keep chatty libraries quiet anyway.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
