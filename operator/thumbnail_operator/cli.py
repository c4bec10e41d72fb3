"""`thumbnail-operator`: run the ThumbnailService operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import threading
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

from thumbnail_operator.handlers import Runtime, build_registry, configure
from thumbnail_operator.kube import load_configuration


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
    parser.add_argument("--peering", metavar="NAME",
                        help="coordinate replicas through this KopfPeering (needs the kopf "
                        "peering CRDs); without it the operator runs standalone")
    parser.add_argument("--priority", type=int, default=None,
                        help="peering priority (default: random, so one replica leads)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, stop_flag: threading.Event | None = None) -> None:
    runtime = Runtime(load_configuration(args.kubeconfig), resync_seconds=args.resync_seconds)
    settings = kopf.OperatorSettings()
    configure(settings)
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
    peering = args.peering is not None
    await kopf.operator(
        registry=build_registry(runtime),
        settings=settings,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=not peering,
        peering_name=args.peering,
        # Equal priorities freeze each other in kopf; distinct ones elect the highest.
        priority=args.priority if args.priority is not None else random.randint(1, 10_000),
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.metrics_port:
        start_http_server(args.metrics_port)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
