"""The operator runs the whole suite as its ServiceAccount, under operator/rbac.yaml only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.support import (
    OPERATOR_ACCOUNT,
    OPERATOR_NAMESPACE,
    expect_api_error,
    patch_tns,
    sample,
    wait_for,
    wait_ready,
)
from thumbnail_operator import constants as c
from thumbnail_operator.kube import SERVICE, THUMBNAIL_SERVICE_V1ALPHA1, KubeClient

pytestmark = pytest.mark.cluster

SERVICE_ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"


def test_operator_identity_is_its_service_account(operator: Any) -> None:
    review = operator.controller.kube.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review["status"]["userInfo"]["username"] == SERVICE_ACCOUNT


def test_role_is_sufficient_for_a_full_reconcile(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    body = sample("rbac", persistence={"enabled": False})
    body["spec"]["server"]["service"]["nodePort"] = {"enabled": True, "port": 30222}
    admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace), body=body)
    cr = wait_ready(admin, namespace, "rbac", timeout=90)
    # The address of the node a ready server pod runs on (reconcile reads the pods' hostIP).
    servers = admin.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={
        "labelSelector": "app.kubernetes.io/instance=rbac,app.kubernetes.io/component=server"})
    hosts = {p["status"].get("hostIP") for p in servers["items"]}
    assert cr["status"]["nodePortEndpoint"] in {f"{host}:30222" for host in hosts if host}

    # Pruning exercises the delete verb: switching the NodePort off removes its Service.
    patch_tns(admin, namespace, "rbac", {"server": {"service": {"nodePort": {"enabled": False}}}})
    wait_for(lambda: admin.get(SERVICE, namespace, "rbac-server-nodeport") is None,
             timeout=10, what="NodePort Service pruned")
    cr = wait_ready(admin, namespace, "rbac", timeout=30)
    assert cr["status"]["nodePortEndpoint"] == ""

    events = admin.request("GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    ours = [e for e in events if e.get("reportingComponent") == c.FIELD_MANAGER]
    assert {e["reason"] for e in ours} >= {"Created", "Deleted", "AllComponentsReady"}
    assert not [e for e in ours if e["type"] == "Warning"], ours


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/nodes", None),
        # Pods are readable (status explains stuck ones), never created.
        ("POST", "/api/v1/namespaces/kube-system/pods",
         {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nope"},
          "spec": {"containers": [{"name": "c", "image": "x.invalid/x:1"}]}}),
        ("DELETE", "/api/v1/namespaces/default", None),
        ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
          "metadata": {"name": "escalate"}, "rules": []}),
        ("PATCH", THUMBNAIL_SERVICE_V1ALPHA1.path("default", "any"), {"spec": {}}),
    ],
    ids=["list-nodes", "create-pod", "delete-namespace", "create-clusterrole", "patch-spec"],
)
def test_role_grants_nothing_else(
    operator: Any, method: str, path: str, body: dict[str, Any] | None
) -> None:
    kube: KubeClient = operator.controller.kube
    err = expect_api_error(
        lambda: kube.request(method, path, body=body,
                             content_type="application/merge-patch+json")
    )
    assert err.status == 403, err

