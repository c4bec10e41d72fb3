"""Kubernetes Events about a ThumbnailService (core/v1, like `kubectl describe` shows)."""

from __future__ import annotations

import logging
import socket
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator.kube import EVENT, ApiError, KubeClient
from thumbnail_operator.status import now_rfc3339

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube
        self._instance = socket.gethostname()

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
                "kind": c.KIND,
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
        try:
            self._kube.request("POST", EVENT.path(meta["namespace"]), body=event)
        except ApiError as err:
            log.warning("could not record event %s: %s", reason, err)
