"""Smoke tests proving the local control plane has real semantics (controllers, GC, CEL, SSA)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException

from thumbnail_substrate import testing
from thumbnail_substrate.kube import KubeCluster

pytestmark = pytest.mark.cluster


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    return testing.wait_for(check, timeout=timeout, what=what, interval=0.25)


@pytest.fixture(scope="module")
def api(kube_cluster: KubeCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: _has_default_sa(core, name), what="default ServiceAccount")
    yield name
    core.delete_namespace(name)


def _has_default_sa(core: client.CoreV1Api, ns: str) -> bool:
    try:
        core.read_namespaced_service_account("default", ns)
        return True
    except ApiException:
        return False


def _pod_template(app: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "example.invalid/app:1"}]},
    }


def test_kwok_nodes_are_ready(api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api).list_node().items
    ready = [
        n.metadata.name
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    assert len(ready) >= 2, ready


def test_deployment_reaches_two_ready_replicas(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": _pod_template("web"),
            },
        },
    )
    wait_for(
        lambda: apps.read_namespaced_deployment("web", namespace).status.ready_replicas == 2,
        what="2 ready replicas",
    )
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert {p.spec.node_name for p in pods} <= {"kwok-node-0", "kwok-node-1"}
    assert all(p.status.phase == "Running" for p in pods)


def test_statefulset_with_volume_claim_template(api: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db",
                "replicas": 1,
                "selector": {"matchLabels": {"app": "db"}},
                "template": _pod_template("db"),
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            },
        },
    )
    wait_for(
        lambda: apps.read_namespaced_stateful_set("db", namespace).status.ready_replicas == 1,
        what="StatefulSet ready",
    )
    pvc = core.read_namespaced_persistent_volume_claim("data-db-0", namespace)
    assert pvc.status.phase == "Bound"


def test_job_completes(api: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "once"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "example.invalid/job:1"}],
                    }
                },
            },
        },
    )
    wait_for(
        lambda: (batch.read_namespaced_job("once", namespace).status.succeeded or 0) == 1,
        what="Job succeeded",
    )


def test_garbage_collector_deletes_dependents(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "dependent",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner.metadata.uid,
                    }
                ],
            }
        },
    )
    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
            return False
        except ApiException as err:
            return err.status == 404

    wait_for(gone, what="dependent garbage-collected")


def test_server_side_apply_tracks_field_managers(api: client.ApiClient, namespace: str) -> None:
    dyn = dynamic.DynamicClient(api)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "namespace": namespace},
        "data": {"a": "1"},
    }
    first = cms.server_side_apply(
        body=body, field_manager="smoke", name="applied", namespace=namespace
    )
    again = cms.server_side_apply(
        body=body, field_manager="smoke", name="applied", namespace=namespace
    )
    # Re-applying the same intent is a no-op: the resourceVersion does not move.
    assert first.metadata.resourceVersion == again.metadata.resourceVersion
    managers = {m.manager for m in again.metadata.managedFields}
    assert "smoke" in managers


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.example.com"},
    "spec": {
        "group": "smoke.example.com",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "min": {"type": "integer"},
                                    "max": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min <= self.max",
                                        "message": "min must not exceed max",
                                    }
                                ],
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_with_cel_rule_and_status_subresource(api: client.ApiClient, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(CRD)
    except ApiException as err:
        if err.status != 409:
            raise
    wait_for(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in ext.read_custom_resource_definition(CRD["metadata"]["name"]).status.conditions
            or []
        ),
        what="CRD established",
    )
    custom = client.CustomObjectsApi(api)
    args = ("smoke.example.com", "v1", namespace, "widgets")

    def create(name: str, spec: dict[str, int]) -> dict[str, Any]:
        return wait_for(
            lambda: _try_create(custom, args, name, spec), timeout=20, what="CRD served"
        )

    good = create("good", {"min": 1, "max": 2})
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(
            *args,
            {
                "apiVersion": "smoke.example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "bad"},
                "spec": {"min": 3, "max": 2},
            },
        )
    assert info.value.status == 422
    assert "min must not exceed max" in info.value.body
    # Status goes only through the subresource: a main-resource write ignores it.
    good["status"] = {"phase": "Sneaky"}
    updated = custom.replace_namespaced_custom_object(*args, "good", good)
    assert "status" not in updated
    custom.patch_namespaced_custom_object_status(*args, "good", {"status": {"phase": "Ok"}})
    assert custom.get_namespaced_custom_object(*args, "good")["status"]["phase"] == "Ok"


def _try_create(
    custom: client.CustomObjectsApi, args: tuple[str, ...], name: str, spec: dict[str, int]
) -> dict[str, Any] | None:
    try:
        return custom.create_namespaced_custom_object(
            *args,
            {  # type: ignore[no-any-return]
                "apiVersion": "smoke.example.com/v1",
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": spec,
            },
        )
    except ApiException as err:
        if err.status == 404:  # discovery of a fresh CRD lags for a moment
            return None
        raise


def test_kwok_renews_node_leases(api: client.ApiClient) -> None:
    """Without renewals the node lifecycle controller marks every node NotReady after ~50 s."""
    coord = client.CoordinationV1Api(api)

    def renew_time() -> Any:
        return coord.read_namespaced_lease("kwok-node-0", "kube-node-lease").spec.renew_time

    first = wait_for(renew_time, what="node lease")
    wait_for(lambda: renew_time() != first, timeout=60, what="lease renewal")
