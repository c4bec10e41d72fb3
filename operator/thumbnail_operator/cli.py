"""`thumbnail-operator`: run the ThumbnailService operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

from prometheus_client import start_http_server

from thumbnail_operator.conversion import options as conversion_options
from thumbnail_operator.kube import load_configuration
from thumbnail_operator.runner import RunOptions, run_operator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="thumbnail-operator", description=__doc__)
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then "
                        "$KUBECONFIG or ~/.kube/config)")
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch only this namespace (repeatable; default: all namespaces)")
    parser.add_argument("--metrics-port", type=int, default=8080,
                        help="Prometheus metrics port (0 disables)")
    parser.add_argument("--liveness-port", type=int, default=8081,
                        help="liveness probe port, served at /healthz (0 disables)")
    parser.add_argument("--resync-seconds", type=float, default=60.0,
                        help="revisit every resource at least this often")
    parser.add_argument("--workers", type=int, default=16,
                        help="reconcile passes running at once, each for a different resource "
                        "(they mostly wait for the API server)")
    parser.add_argument("--peering", metavar="NAME",
                        help="coordinate replicas through this ClusterKopfPeering (needs "
                        "operator/kopf-peering.yaml); without it the operator runs standalone")
    parser.add_argument("--priority", type=int, default=None,
                        help="peering priority (default: random, so exactly one replica leads)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    conversion_options.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.metrics_port:
        start_http_server(args.metrics_port)
    options = RunOptions(
        namespaces=args.namespace,
        resync_seconds=args.resync_seconds,
        workers=args.workers,
        liveness_port=args.liveness_port or None,
        peering=args.peering,
        priority=args.priority,
        conversion=conversion_options.settings_from_args(args),
    )
    asyncio.run(run_operator(load_configuration(args.kubeconfig), options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
