"""Run one operator process: the conversion webhook, then kopf over the controller."""

from __future__ import annotations

import logging
import random
import threading

import kopf
from kubernetes import client

from thumbnail_operator.controller.controller import Controller
from thumbnail_operator.controller.handlers import build_registry, configure
from thumbnail_operator.settings import OperatorSettings
from thumbnail_operator.webhook.service import ConversionService


async def run_operator(
    configuration: client.Configuration,
    settings: OperatorSettings,
    *,
    controller: Controller | None = None,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    controller = controller or Controller(configuration, settings)
    kopf_settings = kopf.OperatorSettings()
    configure(kopf_settings)
    # kopf logs every handler success at INFO; ours logs what was actually done.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Conversions first: the certificate and caBundle are settled and /convert answers before
    # kopf starts watching, and the stored-version migration runs once they are served.
    conversion = (
        ConversionService(controller.kube, settings) if settings.webhook_enabled else None
    )
    if conversion is not None:
        await conversion.start()
    try:
        await kopf.operator(
            registry=build_registry(controller),
            settings=kopf_settings,
            clusterwide=not settings.namespace,
            namespaces=list(settings.namespace),
            standalone=settings.peering is None,
            peering_name=settings.peering,
            # Equal priorities freeze each other in kopf; distinct ones let the highest lead.
            priority=(
                settings.priority if settings.priority is not None
                else random.randint(1, 10_000)
            ),
            liveness_endpoint=(
                f"http://0.0.0.0:{settings.liveness_port}/healthz"
                if settings.liveness_port else None
            ),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        if conversion is not None:
            await conversion.stop()
