"""Issue 15 on the real control plane: disruption budgets and scheduling, operator in-process
as its own ServiceAccount (so its RBAC for PodDisruptionBudgets is proven too)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.operator.support import (
    get_tns,
    patch_tns,
    sample,
    wait_for,
    wait_ready,
)
from thumbnail_operator import constants as c
from thumbnail_operator.kube import PDB, THUMBNAIL_SERVICE_V1ALPHA1, KubeClient

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]
NO_PERSISTENCE = {"enabled": False}


def create(admin: KubeClient, namespace: str, body: Obj) -> Obj:
    body["metadata"]["namespace"] = namespace
    return admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace), body=body)


def budget(admin: KubeClient, namespace: str, name: str) -> Obj | None:
    return admin.get(PDB, namespace, name)


def test_worker_budget_follows_the_replica_count(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    create(admin, namespace, sample("pdb", persistence=NO_PERSISTENCE,
                                    worker={"replicas": 1}))
    wait_ready(admin, namespace, "pdb", timeout=90)
    assert budget(admin, namespace, "pdb-worker") is None  # one replica: nothing to protect
    assert budget(admin, namespace, "pdb-server") is None

    patch_tns(admin, namespace, "pdb", {"worker": {"replicas": 3}})
    created = wait_for(lambda: budget(admin, namespace, "pdb-worker"), timeout=10,
                       what="worker PodDisruptionBudget created")
    assert created["spec"]["maxUnavailable"] == 1
    assert created["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert created["metadata"]["ownerReferences"][0]["uid"] == get_tns(  # type: ignore[index]
        admin, namespace, "pdb")["metadata"]["uid"]
    wait_ready(admin, namespace, "pdb", timeout=60)

    # The disruption controller finds the three worker pods through the budget's selector
    # and allows exactly one eviction at a time.
    def counted() -> Obj | None:
        status = (budget(admin, namespace, "pdb-worker") or {}).get("status") or {}
        wanted = {"expectedPods": 3, "currentHealthy": 3, "desiredHealthy": 2,
                  "disruptionsAllowed": 1}
        return status if all(status.get(k) == v for k, v in wanted.items()) else None

    wait_for(counted, timeout=30, what="the disruption controller counts 3 worker pods")
    assert budget(admin, namespace, "pdb-server") is None  # the server still has one replica

    # Deleted by hand: a watched child, put back at once.
    uid = created["metadata"]["uid"]
    admin.delete(PDB, namespace, "pdb-worker")
    started = time.monotonic()
    wait_for(lambda: (b := budget(admin, namespace, "pdb-worker")) and b["metadata"]["uid"] != uid,
             timeout=10, what="worker PodDisruptionBudget re-created")
    assert time.monotonic() - started < 10

    patch_tns(admin, namespace, "pdb", {"worker": {"replicas": 1}})
    wait_for(lambda: budget(admin, namespace, "pdb-worker") is None, timeout=10,
             what="worker PodDisruptionBudget pruned below two replicas")
    wait_ready(admin, namespace, "pdb", timeout=60)
    assert budget(admin, namespace, "pdb-worker") is None


def test_server_budget_and_no_budget_for_the_data_stores(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    create(admin, namespace, sample("pdbs", persistence=NO_PERSISTENCE,
                                    server={"replicas": 2}))
    wait_ready(admin, namespace, "pdbs", timeout=90)
    listed = admin.list(PDB, namespace, {c.LABEL_INSTANCE: "pdbs"})
    by_name = {b["metadata"]["name"]: b for b in listed}
    assert set(by_name) == {"pdbs-server", "pdbs-worker"}  # nothing for postgresql/redis/minio
    selector = by_name["pdbs-server"]["spec"]["selector"]["matchLabels"]
    assert selector == {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: "pdbs",
                        c.LABEL_COMPONENT: "server"}
