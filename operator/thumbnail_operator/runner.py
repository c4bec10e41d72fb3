"""Run the operator's kopf loop with explicit credentials (used by the CLI and by tests)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import kopf
from kubernetes import client

from thumbnail_operator.conversion.runtime import ConversionRuntime, ConversionSettings
from thumbnail_operator.handlers import build_registry, configure
from thumbnail_operator.runtime import Runtime


@dataclass(frozen=True)
class RunOptions:
    namespaces: Sequence[str] = ()
    resync_seconds: float = 60.0
    workers: int = 16  # reconcile passes at once (each for a different resource)
    liveness_port: int | None = None
    peering: str | None = None
    priority: int | None = None
    # The ThumbnailService conversion webhook (v1alpha1 <-> v1); None: not served here.
    conversion: ConversionSettings | None = None


async def run_operator(
    configuration: client.Configuration,
    options: RunOptions,
    *,
    runtime: Runtime | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    runtime = runtime or Runtime(
        configuration, resync_seconds=options.resync_seconds, workers=options.workers
    )
    settings = kopf.OperatorSettings()
    configure(settings)
    # kopf logs every handler success at INFO; ours logs what was actually done.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    liveness = (
        f"http://0.0.0.0:{options.liveness_port}/healthz" if options.liveness_port else None
    )
    # Conversions first: the certificate and caBundle are settled and /convert answers before
    # kopf starts watching, and the stored-version migration runs once they are served.
    conversion = (
        ConversionRuntime(runtime.kube, options.conversion) if options.conversion else None
    )
    if conversion is not None:
        await conversion.start()
    try:
        await _run_kopf(runtime, options, settings, liveness, stop_flag, ready_flag)
    finally:
        if conversion is not None:
            await conversion.stop()


async def _run_kopf(
    runtime: Runtime,
    options: RunOptions,
    settings: kopf.OperatorSettings,
    liveness: str | None,
    stop_flag: threading.Event | None,
    ready_flag: threading.Event | None,
) -> None:
    await kopf.operator(
        registry=build_registry(runtime),
        settings=settings,
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        standalone=options.peering is None,
        peering_name=options.peering,
        # Equal priorities freeze each other in kopf; distinct ones let the highest lead.
        priority=options.priority if options.priority is not None else random.randint(1, 10_000),
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
