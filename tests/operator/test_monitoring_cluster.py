"""Issue 15: PodMonitors and a PrometheusRule where the cluster serves the Prometheus
Operator's CRDs (generated from its API types: tools/monitoring-crds.sh), against their real
schema, by an operator started after they were installed and running as its ServiceAccount.
The session's operator (started without them) is stopped meanwhile, and the CRDs are removed
before it starts again, so no other test sees them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.support import (
    InProcessOperator,
    apply_object,
    get_tns,
    load_documents,
    patch_tns,
    sample,
    wait_for,
    wait_ready,
)
from tests.operator.support import create_tns as create
from thumbnail_operator import constants as c
from thumbnail_operator.kube import POD_MONITOR, PROMETHEUS_RULE, KubeClient

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]
CRDS = Path(__file__).resolve().parents[1] / "data" / "monitoring-crds"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _served(admin: KubeClient) -> bool:
    return len(admin.served((POD_MONITOR, PROMETHEUS_RULE))) == 2


@pytest.fixture
def monitoring_operator(
    admin: KubeClient, operator: Any, operator_configuration: Any
) -> Iterator[InProcessOperator]:
    documents = [doc for path in sorted(CRDS.glob("*.yaml")) for doc in load_documents(path)]
    with operator.stopped():
        for document in documents:
            apply_object(admin, document)
        wait_for(lambda: _served(admin), timeout=30, what="PodMonitor and PrometheusRule served")
        runner = InProcessOperator(operator_configuration)
        runner.start()
        try:
            yield runner
        finally:
            runner.stop()
            for document in documents:
                admin.request("DELETE", f"{CRD_PATH}/{document['metadata']['name']}")
            wait_for(lambda: not admin.served((POD_MONITOR, PROMETHEUS_RULE)), timeout=60,
                     what="the monitoring CRDs gone")


def test_monitors_and_alerts_follow_the_spec(
    admin: KubeClient, monitoring_operator: InProcessOperator, namespace: str
) -> None:
    body = sample("mon", persistence={"enabled": False})
    body["spec"]["monitoring"] = {"labels": {"release": "prometheus"}}
    create(admin, namespace, body)
    cr = wait_ready(admin, namespace, "mon", timeout=90)

    def monitoring_children() -> dict[str, Obj]:
        found = {f"PodMonitor/{o['metadata']['name']}": o
                 for o in admin.list(POD_MONITOR, namespace, {c.LABEL_INSTANCE: "mon"})}
        found.update({f"PrometheusRule/{o['metadata']['name']}": o
                      for o in admin.list(PROMETHEUS_RULE, namespace, {c.LABEL_INSTANCE: "mon"})})
        return found

    created = wait_for(lambda: (found := monitoring_children()) and len(found) == 3 and found,
                       timeout=30, what="two PodMonitors and a PrometheusRule")
    assert set(created) == {"PodMonitor/mon-server", "PodMonitor/mon-worker",
                            "PrometheusRule/mon"}
    for obj in created.values():
        assert obj["metadata"]["labels"]["release"] == "prometheus"
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["uid"] == cr["metadata"]["uid"]
    # The real schema kept what the operator wrote (no field was pruned as unknown).
    endpoint = created["PodMonitor/mon-worker"]["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("health", "/metrics")
    rules = created["PrometheusRule/mon"]["spec"]["groups"][0]["rules"]
    assert all(rule["expr"] and rule["for"] for rule in rules), rules

    # A monitor deleted by hand comes back (a watched child).
    admin.delete(POD_MONITOR, namespace, "mon-worker")
    wait_for(lambda: admin.get(POD_MONITOR, namespace, "mon-worker"), timeout=30,
             what="the PodMonitor put back")

    # Turned off: all three are pruned, and the service stays Ready.
    patch_tns(admin, namespace, "mon", {"monitoring": {"enabled": False}})
    wait_for(lambda: not monitoring_children(), timeout=30, what="the monitoring objects pruned")
    ready = get_tns(admin, namespace, "mon") or {}
    assert any(cond["type"] == "Ready" and cond["status"] == "True"
               for cond in (ready.get("status") or {}).get("conditions", []))
