"""Kubernetes Events about a ThumbnailService or ThumbnailBackup (core/v1, as `kubectl
describe` shows them)."""

from __future__ import annotations

import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator.controller.status import now_rfc3339
from thumbnail_operator.kube import EVENT, KubeClient

log = logging.getLogger(__name__)


class EventRecorder:
    """Posts Events; with `background=True` on one thread of its own, in order, so a
    reconcile pass does not wait for a round trip per Event (half of a first pass's
    requests are Events). `close()` posts what is still queued."""

    def __init__(self, kube: KubeClient, *, background: bool = False) -> None:
        self._kube = kube
        self._instance = socket.gethostname()
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="events") if background else None
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def record(self, owner: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Best effort: a failed Event must never fail a reconcile."""
        meta = owner["metadata"]
        now = now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": owner.get("apiVersion", c.API_VERSION),
                "kind": owner.get("kind", c.KIND),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": c.FIELD_MANAGER},
            "reportingComponent": c.FIELD_MANAGER,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        log_level = logging.WARNING if type_ == "Warning" else logging.INFO
        log.log(log_level, "%s/%s: %s: %s", meta["namespace"], meta["name"], reason, message)
        if self._executor is None:
            self._post(event)
        else:
            try:
                self._executor.submit(self._post, event)
            except RuntimeError:  # shut down: the operator is stopping
                log.debug("event %s dropped at shutdown", reason)

    def _post(self, event: dict[str, Any]) -> None:
        try:
            self._kube.request("POST", EVENT.path(event["metadata"]["namespace"]), body=event)
        except Exception as err:  # best effort, also off the reconcile thread
            log.warning("could not record event %s: %s", event["reason"], err)
