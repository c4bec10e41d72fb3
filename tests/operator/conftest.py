"""Fixtures for the operator tests: CRD installed, operator running as its ServiceAccount."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.operator.support import (
    BACKUP_CRD_FILE,
    CRD_FILE,
    POLICIES_FILE,
    RBAC_FILE,
    InProcessOperator,
    apply_object,
    load_documents,
    wait_for,
)
from thumbnail_operator.kube import KubeClient, load_configuration
from thumbnail_substrate import operator_harness as harness
from thumbnail_substrate.local_webhook import localize, shared_webhook


@pytest.fixture(scope="session")
def admin(kube_cluster: Any) -> Iterator[KubeClient]:
    """Cluster-admin client (the tests' own identity)."""
    kube = KubeClient(load_configuration(str(kube_cluster.kubeconfig)))
    yield kube
    kube.close()


@pytest.fixture(scope="session")
def crd(admin: KubeClient, kube_cluster: Any) -> dict[str, Any]:
    # The shipped CRD converts v1alpha1 <-> v1 through the webhook Service; on the local
    # control plane that Service points at a webhook on localhost (tests/upgrade).
    body = localize(load_documents(CRD_FILE)[0], shared_webhook(str(kube_cluster.kubeconfig)))
    apply_object(admin, body)
    apply_object(admin, load_documents(BACKUP_CRD_FILE)[0])
    for document in load_documents(POLICIES_FILE):  # deletion protection (api/policy.py)
        apply_object(admin, document)
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{body['metadata']['name']}"

    def established() -> bool:
        conditions = (admin.request("GET", path).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=30, what="CRD established")
    return body


@pytest.fixture(scope="session")
def operator_configuration(admin: KubeClient, kube_cluster: Any) -> client.Configuration:
    """Credentials of the operator's own ServiceAccount, with the RBAC from operator/rbac.yaml.

    A real token from the TokenRequest API: every request the operator (kopf watches and the
    reconciler's writes) makes is authorised by that Role alone, as in a cluster.
    """
    for document in load_documents(RBAC_FILE):
        apply_object(admin, document)
    return harness.operator_configuration(admin)


@pytest.fixture(scope="session")
def operator(crd: dict[str, Any], operator_configuration: client.Configuration) -> Iterator[
    InProcessOperator
]:
    runner = InProcessOperator(operator_configuration)
    runner.start()
    yield runner
    runner.stop()


@pytest.fixture
def namespace(admin: KubeClient) -> Iterator[str]:
    name = f"tns-{uuid.uuid4().hex[:8]}"
    admin.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
    })
    yield name
    admin.request("DELETE", f"/api/v1/namespaces/{name}")
