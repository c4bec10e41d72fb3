"""`kubectl delete tns` on real pods: everything the operator made is gone, the claims are
kept or deleted as the retention policy says, and the NodePort stops answering."""

from __future__ import annotations

import time

import httpx
import pytest
import yaml

from tests.e2e.conftest import NAMESPACE, E2ECluster, Service, api_key
from thumbnail_substrate.deploy import ready_condition
from thumbnail_substrate.testing import KubectlError, wait_for

pytestmark = pytest.mark.e2e

CHILD_KINDS = "deployments,statefulsets,services,configmaps,secrets,jobs,pods"


def _names(cluster: E2ECluster, *args: str) -> list[str]:
    return cluster.kubectl("-n", NAMESPACE, "get", *args, "-o", "name").split()


def _a_finished_job(http: httpx.Client) -> tuple[dict[str, object], str, bytes]:
    """A succeeded job of the earlier tests, one thumbnail's name and bytes."""
    jobs = http.get("/v1/jobs", params={"status": "succeeded", "limit": 1}).json()["items"]
    assert jobs, "no succeeded job to keep"
    job = jobs[0]
    name = job["thumbnails"][0]["name"]
    thumbnail = http.get(f"/v1/jobs/{job['id']}/thumbnails/{name}")
    assert thumbnail.status_code == 200, thumbnail.text
    return job, name, thumbnail.content


def test_protected_resource_refuses_delete_then_comes_back_on_its_retained_data(
    e2e_cluster: E2ECluster, service: Service
) -> None:
    """deletionProtection refuses `kubectl delete` (the installed ValidatingAdmissionPolicy);
    once off, delete and re-create with retentionPolicy Retain: the same jobs, same bytes."""
    kubectl, name = e2e_cluster.kubectl, service.name
    cr = e2e_cluster.get("-n", NAMESPACE, "thumbnailservice", name)
    assert cr["spec"]["persistence"]["retentionPolicy"] == "Retain", cr["spec"]["persistence"]
    key = api_key(e2e_cluster, service)
    with httpx.Client(base_url=e2e_cluster.api_url, timeout=30,
                      headers={"X-API-Key": key}) as http:
        job, thumbnail, data = _a_finished_job(http)

    patch = '{"spec":{"deletionProtection":%s}}'
    kubectl("-n", NAMESPACE, "patch", "thumbnailservice", name, "--type", "merge",
            "-p", patch % "true")
    with pytest.raises(KubectlError) as refused:
        kubectl("-n", NAMESPACE, "delete", "thumbnailservice", name, "--wait=false")
    assert "has spec.deletionProtection: true" in str(refused.value), refused.value
    assert f"kubectl patch thumbnailservice {name} -n {NAMESPACE}" in str(refused.value)
    kubectl("-n", NAMESPACE, "patch", "thumbnailservice", name, "--type", "merge",
            "-p", patch % "false")

    started = time.monotonic()
    kubectl("-n", NAMESPACE, "delete", "thumbnailservice", name, "--wait=true",
            "--timeout=180s", timeout=200)
    selector = f"app.kubernetes.io/instance={name}"
    wait_for(lambda: not _names(e2e_cluster, "deployments,statefulsets,pods", "-l", selector),
             timeout=300, what=f"the workloads of {name} gone", interval=2)
    body = {"apiVersion": cr["apiVersion"], "kind": cr["kind"],
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": cr["metadata"].get("labels") or {}},
            "spec": cr["spec"]}
    kubectl("-n", NAMESPACE, "create", "-f", "-", stdin=yaml.safe_dump(body))
    wait_for(lambda: ready_condition(e2e_cluster.kubeconfig, NAMESPACE, name), timeout=300,
             what=f"re-created {name} READY True", interval=2, ignore=(AssertionError,))
    print(f"\n[delete + re-create with Retain] Ready again after "
          f"{time.monotonic() - started:.0f}s")

    assert api_key(e2e_cluster, service) == key  # the credentials came back, not new ones
    with httpx.Client(base_url=e2e_cluster.api_url, timeout=30,
                      headers={"X-API-Key": key}) as http:
        again = wait_for(lambda: http.get(f"/v1/jobs/{job['id']}"), timeout=60,
                         what="the API answering", interval=1, ignore=(httpx.HTTPError,))
        assert again.status_code == 200 and again.json()["status"] == "succeeded", again.text
        same = http.get(f"/v1/jobs/{job['id']}/thumbnails/{thumbnail}")
        assert same.status_code == 200 and same.content == data


@pytest.mark.parametrize("instance", ["legacy", None])
def test_delete_removes_what_the_operator_created(
    e2e_cluster: E2ECluster, service: Service, instance: str | None
) -> None:
    name = instance or service.name
    selector = f"app.kubernetes.io/instance={name}"
    assert _names(e2e_cluster, CHILD_KINDS, "-l", selector), "the operator created nothing?"
    claims = [c for c in _names(e2e_cluster, "pvc") if f"-{name}-" in c]
    assert claims, "no claims before the delete"
    cr = e2e_cluster.get("-n", NAMESPACE, "thumbnailservice", name)
    e2e_cluster.kubectl("-n", NAMESPACE, "delete", "thumbnailservice", name, "--wait=true",
                        "--timeout=180s", timeout=200)
    policy = cr["spec"].get("persistence", {}).get("retentionPolicy", "Retain")
    # Retained volumes keep the credentials that open them: the operator's copy stays too.
    kept = {f"secret/{name}-credentials-copy"} if policy == "Retain" else set()
    wait_for(lambda: set(_names(e2e_cluster, CHILD_KINDS, "-l", selector)) == kept,
             timeout=300, what=f"children of {name} to be garbage-collected", interval=2)
    left = [c for c in _names(e2e_cluster, "pvc") if f"-{name}-" in c]
    if policy == "Retain":
        assert set(left) == set(claims), (claims, left)  # the data outlives the resource
        e2e_cluster.kubectl("-n", NAMESPACE, "delete", *left, *kept, "--wait=false")
    else:
        wait_for(lambda: not [c for c in _names(e2e_cluster, "pvc") if f"-{name}-" in c],
                 timeout=120, what="claims deleted with the resource", interval=2)
    if instance is None:
        with httpx.Client(base_url=e2e_cluster.api_url, timeout=5) as http, pytest.raises(
            httpx.HTTPError
        ):
            http.get("/healthz")
