"""The sizing and audit options of KubeCluster (used by bench/operator_scale.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from thumbnail_substrate.kube import KubeCluster
from thumbnail_substrate.kube_objects import audit_policy, kwok_node

pytestmark = pytest.mark.cluster


def test_node_pod_capacity_is_a_parameter() -> None:
    assert kwok_node("n")["status"]["allocatable"]["pods"] == "110"
    assert kwok_node("n", pods=500)["status"]["capacity"]["pods"] == "500"


def test_audit_policy_logs_writes_only() -> None:
    rules = audit_policy()["rules"]
    assert rules[0]["level"] == "Metadata" and "get" not in rules[0]["verbs"]
    assert rules[-1] == {"level": "None"}


def test_sized_cluster_with_audit_log() -> None:
    with KubeCluster(nodes=3, node_pods=250, pv_pool=5, audit=True, client_qps=40) as cluster:
        nodes = cluster.request("GET", "/api/v1/nodes")["items"]
        assert len(nodes) == 3
        assert {n["status"]["allocatable"]["pods"] for n in nodes} == {"250"}
        volumes = cluster.request("GET", "/api/v1/persistentvolumes")["items"]
        assert len(volumes) == 5
        cluster.request("POST", "/api/v1/namespaces/default/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "audited"}})
        cluster.request("GET", "/api/v1/namespaces/default/configmaps/audited")

        def audited() -> list[dict[str, Any]]:
            return [e for e in cluster.audit_events()
                    if (e.get("objectRef") or {}).get("name") == "audited"]

        deadline = time.monotonic() + 20
        while not audited() and time.monotonic() < deadline:
            time.sleep(0.2)
        events = audited()
        assert [e["verb"] for e in events] == ["create"]  # the GET is not logged
        assert events[0]["user"]["username"] == "admin"
        assert events[0]["responseStatus"]["code"] == 201
