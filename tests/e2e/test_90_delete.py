"""`kubectl delete tns` on real pods: everything the operator made is gone, the claims are
kept or deleted as the retention policy says, and the NodePort stops answering."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import NAMESPACE, E2ECluster, Service
from thumbnail_substrate.testing import wait_for

pytestmark = pytest.mark.e2e

CHILD_KINDS = "deployments,statefulsets,services,configmaps,secrets,jobs,pods"


def _names(cluster: E2ECluster, *args: str) -> list[str]:
    return cluster.kubectl("-n", NAMESPACE, "get", *args, "-o", "name").split()


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
