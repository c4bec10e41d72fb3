"""Issue 15 on the real control plane: disruption budgets and scheduling, operator in-process
as its own ServiceAccount (so its RBAC for PodDisruptionBudgets is proven too)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.operator.support import (
    children,
    condition,
    get_tns,
    patch_tns,
    resource_versions,
    sample,
    wait_for,
    wait_quiet,
    wait_ready,
)
from tests.operator.support import (
    create_tns as create,
)
from thumbnail_operator import constants as c
from thumbnail_operator.kube import (
    DEPLOYMENT,
    PDB,
    POD,
    STATEFUL_SET,
    KubeClient,
)

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]
NO_PERSISTENCE = {"enabled": False}


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


# -- scheduling ------------------------------------------------------------------------------

PRIORITY_CLASSES = "/apis/scheduling.k8s.io/v1/priorityclasses"


@pytest.fixture
def priority_class(admin: KubeClient) -> Iterator[str]:
    name = f"thumbnails-{uuid.uuid4().hex[:8]}"
    admin.request("POST", PRIORITY_CLASSES, body={
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": name}, "value": 1000})
    yield name
    admin.request("DELETE", f"{PRIORITY_CLASSES}/{name}")


def node_names(admin: KubeClient) -> list[str]:
    return sorted(n["metadata"]["name"] for n in admin.request("GET", "/api/v1/nodes")["items"])


def generations(admin: KubeClient, namespace: str, instance: str) -> dict[str, int]:
    return {f"{kind}/{name}": int(obj["metadata"]["generation"])
            for (kind, name), obj in children(admin, namespace, instance).items()
            if kind in ("Deployment", "StatefulSet")}


def pods_of(admin: KubeClient, namespace: str, instance: str, component: str) -> list[Obj]:
    return admin.list(POD, namespace, {c.LABEL_INSTANCE: instance, c.LABEL_COMPONENT: component})


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """What was written meanwhile, but the budgets, whose status follows the pods (written by
    the disruption controller; their spec is checked separately)."""
    return {key for key in before.keys() | after.keys()
            if before.get(key) != after.get(key) and not key.startswith("PodDisruptionBudget/")}


def test_default_spread_and_a_scheduling_change_rolls_only_its_workload(
    admin: KubeClient, operator: Any, namespace: str, priority_class: str
) -> None:
    create(admin, namespace, sample("place", persistence=NO_PERSISTENCE))
    wait_ready(admin, namespace, "place", timeout=90)
    found = children(admin, namespace, "place")
    for name, component in (("place-server", "server"), ("place-worker", "worker")):
        pod = found[("Deployment", name)]["spec"]["template"]["spec"]
        assert pod["topologySpreadConstraints"] == [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {c.LABEL_NAME: c.APP_NAME,
                                              c.LABEL_INSTANCE: "place",
                                              c.LABEL_COMPONENT: component}},
            "matchLabelKeys": ["pod-template-hash"],
        }]
    assert "topologySpreadConstraints" not in found[("StatefulSet", "place-postgresql")][
        "spec"]["template"]["spec"]
    before = wait_quiet(admin, namespace, "place")
    generations_before = generations(admin, namespace, "place")

    node = node_names(admin)[0]
    patch_tns(admin, namespace, "place", {"worker": {"scheduling": {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "media",
                         "effect": "NoSchedule"}],
        "priorityClassName": priority_class,
    }}})
    wait_for(lambda: (admin.get(DEPLOYMENT, namespace, "place-worker") or {}).get(
        "spec", {}).get("template", {}).get("spec", {}).get("nodeSelector"),
        timeout=10, what="worker pod template placed")
    wait_ready(admin, namespace, "place", timeout=60)
    after = wait_quiet(admin, namespace, "place")

    assert changed(before, after) == {"Deployment/place-worker", "ThumbnailService"}
    generations_after = generations(admin, namespace, "place")
    # The worker rolled; the server did not, nor anything else.
    assert generations_after == {**generations_before, "Deployment/place-worker":
                                 generations_before["Deployment/place-worker"] + 1}
    workers = pods_of(admin, namespace, "place", "worker")
    assert len(workers) == 2
    for pod in workers:  # placed where asked, with the class's priority (admission)
        assert pod["spec"]["nodeName"] == node
        assert pod["spec"]["priority"] == 1000
        assert pod["spec"]["priorityClassName"] == priority_class
    spread = workers[0]["spec"]["topologySpreadConstraints"]
    assert spread[0]["topologyKey"] == "kubernetes.io/hostname"  # the default stayed
    assert budget(admin, namespace, "place-worker")["metadata"]["generation"] == 1  # type: ignore[index]

    # A data store (a StatefulSet): the same, only it rolls.
    patch_tns(admin, namespace, "place", {"postgresql": {"scheduling": {
        "nodeSelector": {"kubernetes.io/hostname": node}}}})
    wait_for(lambda: (admin.get(STATEFUL_SET, namespace, "place-postgresql") or {}).get(
        "spec", {}).get("template", {}).get("spec", {}).get("nodeSelector"),
        timeout=10, what="postgresql pod template placed")
    wait_ready(admin, namespace, "place", timeout=60)
    final = wait_quiet(admin, namespace, "place")
    assert changed(after, final) == {"StatefulSet/place-postgresql", "ThumbnailService"}
    assert generations(admin, namespace, "place") == {
        **generations_after,
        "StatefulSet/place-postgresql": generations_after["StatefulSet/place-postgresql"] + 1}
    wait_for(lambda: [p["spec"].get("nodeName") for p in
                      pods_of(admin, namespace, "place", "postgresql")] == [node],
             timeout=30, what="postgresql pod on the chosen node")
    assert resource_versions(admin, namespace, "place").keys() == final.keys()


def degraded_message(admin: KubeClient, namespace: str, name: str, text: str) -> str | None:
    degraded = condition(get_tns(admin, namespace, name), "Degraded") or {}
    message = str(degraded.get("message", ""))
    return message if degraded.get("status") == "True" and text in message else None


def test_an_affinity_the_api_server_refuses_is_reported_in_status(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    """The affinity kinds' content is kept as given by the CRD: what the API server refuses
    in it, it refuses when the operator applies the Deployment, and status says what."""
    create(admin, namespace, sample("aff", persistence=NO_PERSISTENCE))
    wait_ready(admin, namespace, "aff", timeout=90)
    template = (admin.get(DEPLOYMENT, namespace, "aff-worker") or {})["spec"]["template"]

    patch_tns(admin, namespace, "aff", {"worker": {"scheduling": {"affinity": {
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 0, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}}}}})
    message = wait_for(lambda: degraded_message(admin, namespace, "aff", "aff-worker"),
                       timeout=15, what="Degraded with the refusal")
    assert "applying Deployment/aff-worker failed" in message, message
    assert "weight" in message and "must be in the range 1-100" in message, message

    # A misspelt field: strict field validation names it (it is not silently dropped).
    patch_tns(admin, namespace, "aff", {"worker": {"scheduling": {"affinity": {
        "podAntiAffinity": None,
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerm": [{"matchExpressions": []}]}}}}}})
    message = wait_for(lambda: degraded_message(admin, namespace, "aff", "nodeSelectorTerm"),
                       timeout=15, what="Degraded naming the unknown field")
    assert "applying Deployment/aff-worker failed" in message, message
    # The running pods were never touched.
    current = (admin.get(DEPLOYMENT, namespace, "aff-worker") or {})["spec"]["template"]
    assert current == template

    patch_tns(admin, namespace, "aff", {"worker": {"scheduling": {"affinity": None}}})
    wait_ready(admin, namespace, "aff", timeout=60)
    assert condition(get_tns(admin, namespace, "aff"), "Degraded")["status"] == "False"  # type: ignore[index]
