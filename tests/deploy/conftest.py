"""Fixtures for the deployment tests: kubectl on the real local control plane, CRD installed."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.deploy.support import CRDS, MANIFESTS, Kubectl, load_documents, the_one


@pytest.fixture(scope="session")
def kubectl(kube_cluster: Any) -> Kubectl:
    return Kubectl(kube_cluster.kubeconfig)


def install_crds(kubectl: Kubectl) -> None:
    """The CRDs from crds/, installed for real. A CRD that converts through a webhook gets
    the tests' shared local webhook (tools/thumbnail_substrate/local_webhook.py: the operator's own
    webhook classes behind an ExternalName Service), as the operator would serve it."""
    for path in sorted(CRDS.glob("*.yaml")):
        for doc in load_documents(path):
            if (doc["spec"].get("conversion") or {}).get("strategy") == "Webhook":
                from thumbnail_substrate.local_webhook import localize, shared_webhook

                doc = localize(doc, shared_webhook(str(kubectl.kubeconfig)))
            kubectl.apply([doc])
            wait_established(kubectl, doc["metadata"]["name"])


def wait_established(kubectl: Kubectl, name: str, timeout: float = 60.0) -> None:
    """`kubectl wait` fails at once (instead of waiting) while a just-applied CRD has no
    `status.conditions` yet; retry until it can wait."""
    deadline = time.monotonic() + timeout
    while True:
        result = kubectl.run("wait", "--for=condition=Established", "--timeout=60s",
                             f"crd/{name}", check=False)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"CRD {name} not Established: {result.stderr}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def installed_crd(kubectl: Kubectl) -> None:
    """The CRD from crds/, installed for real (dry-runs of custom resources need it)."""
    install_crds(kubectl)


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


@dataclass(frozen=True)
class ShippedRbac:
    """manifests/rbac applied for real, isolated in its own namespace."""

    namespace: str
    account: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"


@pytest.fixture(scope="session")
def shipped_rbac(kubectl: Kubectl, installed_crd: None) -> Iterator[ShippedRbac]:
    """The shipped ServiceAccount, ClusterRole and ClusterRoleBinding, with their rules
    untouched but a unique namespace and role names, so they cannot interfere with the
    operator tests' objects of the same (shipped) names."""
    suffix = uuid.uuid4().hex[:8]
    namespace = f"rbac-{suffix}"
    sa, role, binding = (
        copy.deepcopy(the_one(k)) for k in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    )
    sa["metadata"]["namespace"] = namespace
    role["metadata"]["name"] = f"{role['metadata']['name']}-{suffix}"
    binding["metadata"]["name"] = f"{binding['metadata']['name']}-{suffix}"
    binding["roleRef"]["name"] = role["metadata"]["name"]
    binding["subjects"] = [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": namespace}
    ]
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}])
    kubectl.apply([sa, role, binding])
    try:
        yield ShippedRbac(namespace, sa["metadata"]["name"])
    finally:
        kubectl.run("delete", "clusterrolebinding", binding["metadata"]["name"], check=False)
        kubectl.run("delete", "clusterrole", role["metadata"]["name"], check=False)
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)
