"""Fixtures for the deployment tests: kubectl on the real local control plane, CRD installed."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.deploy.support import CRDS, MANIFESTS, Kubectl, load_documents


@pytest.fixture(scope="session")
def kubectl(kube_cluster: Any) -> Kubectl:
    return Kubectl(kube_cluster.kubeconfig)


@pytest.fixture(scope="session")
def installed_crd(kubectl: Kubectl) -> None:
    """The CRD from crds/, installed for real (dry-runs of custom resources need it)."""
    for path in sorted(CRDS.glob("*.yaml")):
        kubectl.apply(load_documents(path))
        for doc in load_documents(path):
            kubectl.run(
                "wait", "--for=condition=Established", "--timeout=60s",
                f"crd/{doc['metadata']['name']}",
            )


@pytest.fixture(scope="session")
def operator_namespace(kubectl: Kubectl) -> str:
    """manifests/namespace.yaml applied for real: namespaced objects need their namespace."""
    docs = load_documents(MANIFESTS / "namespace.yaml")
    kubectl.apply(docs)
    name: str = docs[0]["metadata"]["name"]
    return name


@pytest.fixture
def make_namespace(kubectl: Kubectl) -> Iterator[Callable[..., str]]:
    """Create throw-away namespaces (with optional labels); deleted after the test."""
    created: list[str] = []

    def make(prefix: str = "deploy", labels: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        kubectl.apply(
            [{"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": name, "labels": labels or {}}}]
        )
        created.append(name)
        return name

    yield make
    for name in created:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)
