"""kopf wiring, kept thin: every handler only triggers the per-resource work queue.

Only `on.event` handlers are used: they are level-based and make kopf store nothing on the
resources (no finalizers, no last-handled-configuration annotation), so an idle operator
writes nothing at all. Children are watched by their owner reference, and by their labels
as a fallback, so a deleted or hand-edited child - even one whose labels were removed -
triggers a reconcile of its owner within a second; the pods of a resource by their labels,
so its status says at once why one is stuck (crash loop, image pull, unschedulable).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kopf
from kubernetes import client

from thumbnail_operator import constants as c
from thumbnail_operator.controller.controller import Controller
from thumbnail_operator.controller.workqueue import ResourceKey, WorkQueue

log = logging.getLogger(__name__)


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    """Give kopf the same credentials as the client library (kubeconfig, token or in-cluster)."""
    header = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or ("Bearer" if token else None),
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def configure(settings: kopf.OperatorSettings) -> None:
    settings.posting.enabled = False  # our own Events only, on significant actions
    settings.scanning.disabled = True  # no CRD/namespace discovery: less RBAC, fixed resources
    settings.watching.server_timeout = 300  # reconnect watches regularly (frozen streams)
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.persistence.finalizer = f"{c.GROUP}/finalizer"  # unused: no handler needs one


def _child_key(
    namespace: str | None, labels: Mapping[str, str], owners: Sequence[Mapping[str, Any]] = ()
) -> ResourceKey | None:
    """The ThumbnailService an object belongs to: its controller reference, else its labels."""
    if not namespace:
        return None
    for ref in owners:
        if ref.get("kind") == c.KIND and str(ref.get("apiVersion", "")).startswith(c.GROUP + "/"):
            return namespace, str(ref["name"])
    instance = labels.get(c.LABEL_INSTANCE)
    if instance and labels.get(c.LABEL_MANAGED_BY) == c.FIELD_MANAGER:
        return namespace, instance
    return None


def _follow(queue: WorkQueue, event_type: str, key: ResourceKey) -> bool:
    """A resource's own event: pass over it now and on every resync, until it is deleted
    (then False)."""
    if event_type == "DELETED":
        queue.forget(key)
        return False
    queue.remember(key)
    queue.trigger(key)
    return True


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(controller.configuration)

    @kopf.on.startup(registry=registry)
    async def startup(**_: Any) -> None:
        controller.queue.start()
        controller.backup_queue.start()
        controller.processing.start()
        log.info("thumbnail-operator started (resync every %.0fs)",
                 controller.settings.resync_seconds)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await controller.processing.stop()
        await controller.queue.stop()
        await controller.backup_queue.stop()
        await asyncio.to_thread(controller.close)  # waits for passes and queued Events

    @kopf.on.probe(id="reconcile_passes", registry=registry)
    def passes(**_: Any) -> int:
        return controller.passes

    @kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, registry=registry)
    async def thumbnail_service_event(
        type: str, namespace: str | None, name: str, **_: Any
    ) -> None:
        if namespace is not None and not _follow(controller.queue, type, (namespace, name)):
            controller.processing.forget((namespace, name))
            controller.reconciler.damper.forget((namespace, name))

    @kopf.on.event(c.GROUP, c.VERSION, c.BACKUP_PLURAL, registry=registry)
    async def thumbnail_backup_event(
        type: str, namespace: str | None, name: str, **_: Any
    ) -> None:
        if namespace is not None:
            _follow(controller.backup_queue, type, (namespace, name))

    def trigger_backup(namespace: str | None, labels: Mapping[str, str]) -> None:
        """A backup Job or its pod changed: its ThumbnailBackup's status follows."""
        backup = labels.get(c.BACKUP_LABEL)
        if namespace and backup:
            controller.backup_queue.trigger((namespace, backup))

    # No label filter on children: kopf filters labels in the operator anyway (the watch
    # stream is the same), and a child whose labels were edited must still be noticed.
    for kind in controller.reconciler.child_kinds:
        group, _, version = kind.api_version.rpartition("/")

        @kopf.on.event(group, version, kind.plural, registry=registry, id=f"child_{kind.plural}")
        async def child_event(
            namespace: str | None, labels: Mapping[str, str], meta: Mapping[str, Any], **_: Any
        ) -> None:
            trigger_backup(namespace, labels)
            key = _child_key(namespace, labels, meta.get("ownerReferences") or ())
            if key is not None:
                controller.queue.trigger(key)

    managed = {c.LABEL_MANAGED_BY: c.FIELD_MANAGER, c.LABEL_NAME: c.APP_NAME}

    @kopf.on.event("", "v1", "pods", labels=managed, registry=registry, id="pods")
    async def pod_event(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
        trigger_backup(namespace, labels)
        key = _child_key(namespace, labels)
        if key is not None:
            controller.queue.trigger(key)

    return registry
