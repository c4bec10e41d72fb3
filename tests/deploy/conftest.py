"""Fixtures for the deployment tests: kubectl on the real local control plane, CRD installed."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import (
    CRDS,
    MANIFESTS,
    NAMESPACED,
    OPERATOR_NAMESPACE,
    Kubectl,
    kustomize_build,
    load_documents,
)


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
    """An install's RBAC applied for real, isolated in its own namespace(s)."""

    namespace: str
    account: str
    watched: tuple[str, ...] = ()  # the namespaced install's watched namespaces; () = all

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"


RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def _isolated_rbac(kubectl: Kubectl, directory: Path) -> Iterator[ShippedRbac]:
    """The RBAC objects of `kubectl kustomize directory` with their rules untouched but unique
    namespaces (the operator's and each watched one) and cluster-scoped names, so they cannot
    interfere with the operator tests' objects of the same (shipped) names."""
    suffix = uuid.uuid4().hex[:8]
    namespace = f"rbac-{suffix}"
    docs = [copy.deepcopy(d) for d in kustomize_build(directory) if d["kind"] in RBAC_KINDS]
    renamed = {OPERATOR_NAMESPACE: namespace}
    for doc in docs:
        ns = doc["metadata"].get("namespace")
        if ns and ns not in renamed:
            renamed[ns] = f"watched-{len(renamed)}-{suffix}"
    cluster_names = {d["metadata"]["name"]: f"{d['metadata']['name']}-{suffix}" for d in docs
                     if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}}
    for doc in docs:
        meta = doc["metadata"]
        if "namespace" in meta:
            meta["namespace"] = renamed[meta["namespace"]]
        else:
            meta["name"] = cluster_names[meta["name"]]
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] = cluster_names[doc["roleRef"]["name"]]
        for subject in doc.get("subjects", []):
            subject["namespace"] = renamed[subject["namespace"]]
    (account,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
    for ns in renamed.values():
        kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}])
    kubectl.apply(docs)
    watched = tuple(v for k, v in renamed.items() if k != OPERATOR_NAMESPACE)
    try:
        yield ShippedRbac(namespace, account, watched)
    finally:
        for doc in docs:
            if "namespace" not in doc["metadata"]:
                kubectl.run("delete", doc["kind"].lower(), doc["metadata"]["name"], check=False)
        for ns in renamed.values():
            kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="session")
def shipped_rbac(kubectl: Kubectl, installed_crd: None) -> Iterator[ShippedRbac]:
    """manifests/ (cluster-wide): the ServiceAccount, ClusterRole and ClusterRoleBinding."""
    yield from _isolated_rbac(kubectl, MANIFESTS)


@pytest.fixture(scope="session")
def namespaced_rbac(kubectl: Kubectl, installed_crd: None) -> Iterator[ShippedRbac]:
    """manifests/namespaced/: Roles in the watched namespace and the operator's own, the
    ClusterRole limited to the CRD."""
    yield from _isolated_rbac(kubectl, NAMESPACED)
