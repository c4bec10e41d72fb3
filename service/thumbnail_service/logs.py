"""Logging setup shared by every entry point."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )
    # urllib3 logs every connection retry; our own code reports the outcome once.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # pyvips forwards libvips' per-operation chatter at INFO.
    logging.getLogger("pyvips").setLevel(max(logging.WARNING, logging.getLevelName(level)))
