"""Fixtures for the operator tests: CRD installed, operator running as its ServiceAccount."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.operator.support import (
    CRD_FILE,
    OPERATOR_ACCOUNT,
    OPERATOR_NAMESPACE,
    RBAC_FILE,
    InProcessOperator,
    apply_cluster_object,
    load_documents,
    wait_for,
)
from tests.upgrade.local_webhook import localize, shared_webhook
from thumbnail_operator.kube import KubeClient, load_configuration


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
    apply_cluster_object(admin, body)
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
        apply_cluster_object(admin, document)
    review = admin.request(
        "POST",
        f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/serviceaccounts/{OPERATOR_ACCOUNT}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 6 * 3600},
        },
    )
    admin_config = admin.configuration
    configuration = client.Configuration()
    configuration.host = admin_config.host
    configuration.ssl_ca_cert = admin_config.ssl_ca_cert
    configuration.verify_ssl = True
    configuration.api_key = {"BearerToken": review["status"]["token"]}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return configuration


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
