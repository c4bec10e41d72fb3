"""The operator watching one namespace (`-n`), running as a ServiceAccount that has only the
namespaced install's RBAC (operator/thumbnail_operator/install: Roles in the watched namespace
and its own, a ClusterRole limited to the CRD): it reconciles a ThumbnailService in its
namespace to Ready, ignores one in another namespace, keeps its webhook certificate under its
Role, and is refused everything outside.

The session's cluster-wide operator is stopped meanwhile (it would reconcile both)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from tests.operator.support import (
    InProcessOperator,
    apply_object,
    children,
    condition,
    expect_api_error,
    get_tns,
    sample,
    wait_for,
    wait_ready,
)
from thumbnail_operator.constants import WEBHOOK_NAMESPACE
from thumbnail_operator.install import files, objects
from thumbnail_operator.install.yamltext import plain
from thumbnail_operator.kube import SECRET, THUMBNAIL_SERVICE_V1ALPHA1, KubeClient
from thumbnail_operator.settings import OperatorSettings
from thumbnail_substrate import operator_harness as harness

pytestmark = pytest.mark.cluster

WEBHOOK_SECRET: str = OperatorSettings.model_fields["webhook_secret"].default
Obj = dict[str, Any]


@dataclass(frozen=True)
class NamespacedInstall:
    namespace: str  # the operator's own
    watched: str
    other: str
    configuration: client.Configuration


def _namespace(admin: KubeClient, name: str) -> None:
    admin.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


@pytest.fixture
def install(admin: KubeClient, crd: Obj) -> Iterator[NamespacedInstall]:
    """The generated namespaced RBAC in fresh namespaces, cluster-scoped names made unique."""
    suffix = uuid.uuid4().hex[:8]
    own, watched, other = f"nsop-{suffix}", f"nsw-{suffix}", f"nso-{suffix}"
    for name in (own, watched, other):
        _namespace(admin, name)
    target = objects.Concrete(namespace=own)
    docs: list[Obj] = plain([objects.service_account(target),
                             *files.namespaced_rbac(target, [watched])])
    cluster_scoped = []
    for doc in docs:
        if doc["kind"].startswith("Cluster"):
            doc["metadata"]["name"] += f"-{suffix}"
            cluster_scoped.append(doc)
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] += f"-{suffix}"
        apply_object(admin, doc)
    # The webhook certificate: a copy of the session's shared webhook Secret (same CA), so
    # this operator's CA check finds the CRD's caBundle current and never replaces it under
    # the shared webhook; it still renews the serving certificate for its own Service name,
    # through its Role (get and patch by name).
    shared = admin.get(SECRET, WEBHOOK_NAMESPACE, WEBHOOK_SECRET)
    assert shared is not None, "the session's shared webhook has no certificate Secret"
    admin.create({"apiVersion": "v1", "kind": "Secret", "type": shared["type"],
                  "metadata": {"name": WEBHOOK_SECRET, "namespace": own},
                  "data": shared["data"]})
    configuration = harness.operator_configuration(
        admin, hours=1, namespace=own, account=objects.NAME)
    try:
        yield NamespacedInstall(own, watched, other, configuration)
    finally:
        for doc in cluster_scoped:
            path = "/apis/rbac.authorization.k8s.io/v1/" + (
                "clusterroles" if doc["kind"] == "ClusterRole" else "clusterrolebindings")
            admin.request("DELETE", f"{path}/{doc['metadata']['name']}")
        for name in (own, watched, other):
            admin.request("DELETE", f"/api/v1/namespaces/{name}")


def test_namespaced_operator_reconciles_only_its_namespace(
    admin: KubeClient, operator: InProcessOperator, install: NamespacedInstall
) -> None:
    with operator.stopped():
        runner = InProcessOperator(install.configuration, namespace=[install.watched],
                                   webhook_namespace=install.namespace)
        runner.start()
        try:
            for namespace, name in ((install.watched, "inside"), (install.other, "outside")):
                body = sample(name, persistence={"enabled": False})
                admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace), body=body)

            cr = wait_ready(admin, install.watched, "inside", timeout=90)
            degraded = condition(cr, "Degraded")
            assert degraded is not None and degraded["status"] == "False", degraded
            assert children(admin, install.watched, "inside")

            time.sleep(3)  # a watch of the other namespace would have acted by now
            outside = get_tns(admin, install.other, "outside")
            assert outside is not None and not outside.get("status"), outside
            assert children(admin, install.other, "outside") == {}

            kube = runner.controller.kube if runner.controller else None
            assert kube is not None
            for path in ("/api/v1/namespaces/kube-system/secrets",
                         f"/api/v1/namespaces/{install.other}/configmaps",
                         "/api/v1/secrets",
                         THUMBNAIL_SERVICE_V1ALPHA1.path(install.other)):
                assert expect_api_error(lambda p=path: kube.request("GET", p)).status == 403

            # Its webhook kept its certificate under the Role: renewed for its own Service
            # name, same CA, so the CRD's caBundle (the shared webhook's CA) is untouched.
            def renewed() -> Obj | None:
                secret = admin.get(SECRET, install.namespace, WEBHOOK_SECRET)
                data = (secret or {}).get("data") or {}
                host = f"thumbnail-operator-webhook.{install.namespace}.svc".encode()
                pem = base64.b64decode(data.get("tls.crt", ""))
                return secret if data and _names_host(pem, host) else None

            secret = wait_for(renewed, timeout=30, what="webhook certificate for its Service")
            shared = admin.get(SECRET, WEBHOOK_NAMESPACE, WEBHOOK_SECRET)
            assert shared is not None and secret["data"]["ca.crt"] == shared["data"]["ca.crt"]
            assert runner.errors == []
        finally:
            runner.stop()
            for namespace, name in ((install.watched, "inside"), (install.other, "outside")):
                admin.request("DELETE", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace, name))


def _names_host(pem: bytes, host: bytes) -> bool:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return host.decode() in sans.get_values_for_type(x509.DNSName)
