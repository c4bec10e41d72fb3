"""`thumbnail-operator`: run the ThumbnailService operator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from prometheus_client import start_http_server

from thumbnail_operator.kube import load_configuration
from thumbnail_operator.run import run_operator
from thumbnail_operator.settings import from_command_line


def main(argv: Sequence[str] | None = None) -> int:
    settings = from_command_line(argv, description=__doc__)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    asyncio.run(run_operator(load_configuration(settings.kubeconfig), settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
