"""Two replicas with kopf peering: only the leader reconciles; the standby takes over."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from tests.operator.support import (
    PEERING_FILE,
    InProcessOperator,
    apply_object,
    load_documents,
    sample,
    wait_for,
    wait_ready,
)
from thumbnail_operator.kube import DEPLOYMENT, THUMBNAIL_SERVICE_V1ALPHA1, KubeClient

pytestmark = pytest.mark.cluster


def install_peering(admin: KubeClient) -> None:
    crd, peering = load_documents(PEERING_FILE)
    apply_object(admin, crd)
    wait_for(lambda: _try_apply(admin, peering), timeout=30, what="peering object")


def _try_apply(admin: KubeClient, obj: dict[str, Any]) -> bool:
    try:
        apply_object(admin, obj)
    except Exception:  # the CRD may not be served yet
        return False
    return True


def test_standby_replica_stays_idle_then_takes_over(
    admin: KubeClient, operator: InProcessOperator, operator_configuration: client.Configuration,
    namespace: str,
) -> None:
    install_peering(admin)
    key = (namespace, "ha")
    with operator.stopped():
        leader = InProcessOperator(operator_configuration, peering="thumbnail-operator",
                                   priority=200)
        standby = InProcessOperator(operator_configuration, peering="thumbnail-operator",
                                    priority=100)
        leader.start()
        standby.start()
        try:
            time.sleep(3)  # let both see each other's peering records
            admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace),
                          body=sample("ha", persistence={"enabled": False}))
            wait_ready(admin, namespace, "ha", timeout=90)
            assert leader.controller is not None and standby.controller is not None
            assert leader.controller.passes_by_key[key] >= 1
            assert standby.controller.passes_by_key[key] == 0

            leader.stop()
            old_uid = admin.get(DEPLOYMENT, namespace, "ha-server")["metadata"]["uid"]  # type: ignore[index]
            admin.delete(DEPLOYMENT, namespace, "ha-server")
            wait_for(
                lambda: (d := admin.get(DEPLOYMENT, namespace, "ha-server"))
                and d["metadata"]["uid"] != old_uid,
                timeout=30, what="the standby to restore the server Deployment",
            )
            controller = standby.controller  # its pass finishes just after the object is back
            wait_for(lambda: controller.passes_by_key[key] >= 1, timeout=10, what="standby pass")
        finally:
            standby.stop()
            leader.stop()
