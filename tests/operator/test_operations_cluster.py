"""Operating the operator: failures surface in status and Events, probes and metrics work."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.operator.support import (
    children,
    condition,
    get_tns,
    sample,
    wait_for,
    wait_quiet,
    wait_ready,
)
from thumbnail_operator import constants as c
from thumbnail_operator.kube import DEPLOYMENT, SECRET, THUMBNAIL_SERVICE_V1ALPHA1, KubeClient
from thumbnail_substrate.testing import kubectl

pytestmark = pytest.mark.cluster


def test_missing_user_secret_degrades_then_recovers(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    body = sample("ext", persistence={"enabled": False})
    body["spec"]["postgresql"] = {
        "enabled": False,
        "external": {"host": "db.example.com", "secretRef": {"name": "db", "key": "pw"}},
    }
    admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace), body=body)

    degraded = wait_for(
        lambda: (cond := condition(get_tns(admin, namespace, "ext"), "Degraded"))
        and cond["status"] == "True" and cond,
        timeout=20, what="Degraded condition",
    )
    assert "Secret 'db' (referenced) is missing" in degraded["message"]
    warning = wait_for(
        lambda: [e for e in admin.request("GET", f"/api/v1/namespaces/{namespace}/events")[
            "items"] if e["type"] == "Warning" and e["reportingComponent"] == c.FIELD_MANAGER],
        timeout=10, what="a Warning event",
    )
    assert warning[0]["reason"] == "ReconcileFailed"
    assert "Secret 'db' (referenced) is missing" in warning[0]["message"]
    assert ("StatefulSet", "ext-postgresql") not in children(admin, namespace, "ext")

    admin.create({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": namespace},
        "stringData": {"pw": "s3cret"},
    })
    cr = wait_ready(admin, namespace, "ext", timeout=60)
    assert condition(cr, "Degraded")["status"] == "False"  # type: ignore[index]
    server = children(admin, namespace, "ext")[("Deployment", "ext-server")]
    env = server["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "THUMBNAIL_DATABASE_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}} in env


def test_editing_the_credentials_secret_rolls_server_and_workers(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace),
                  body=sample("rotate", persistence={"enabled": False}))
    wait_ready(admin, namespace, "rotate", timeout=90)
    wait_quiet(admin, namespace, "rotate")
    before = _hashes(admin, namespace)

    admin.request(
        "PATCH", SECRET.path(namespace, "rotate-credentials"),
        body={"stringData": {"THUMBNAIL_API_KEYS": "rotated-by-hand"}},
        content_type="application/merge-patch+json",
    )
    wait_for(lambda: all(h != before[n] for n, h in _hashes(admin, namespace).items()),
             timeout=15, what="server and worker re-hashed")
    secret = admin.get(SECRET, namespace, "rotate-credentials")
    assert secret is not None and secret["data"]["THUMBNAIL_API_KEYS"] == "cm90YXRlZC1ieS1oYW5k"


def test_scale_subresource_scales_workers(
    admin: KubeClient, operator: Any, namespace: str, kube_cluster: Any
) -> None:
    admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace),
                  body=sample("scaled", persistence={"enabled": False}))
    wait_ready(admin, namespace, "scaled", timeout=90)
    kubectl(kube_cluster.kubeconfig, "-n", namespace, "scale", "tns/scaled", "--replicas=4")
    wait_for(
        lambda: (d := admin.get(DEPLOYMENT, namespace, "scaled-worker"))
        and d["spec"]["replicas"] == 4,
        timeout=10, what="workers scaled to 4",
    )
    cr = wait_ready(admin, namespace, "scaled", timeout=60)
    assert cr["status"]["workerReplicas"] == "4/4"
    scale = json.loads(kubectl(kube_cluster.kubeconfig, "-n", namespace, "get", "--raw",
                               f"{THUMBNAIL_SERVICE_V1ALPHA1.path(namespace, 'scaled')}/scale"))
    assert scale["status"]["replicas"] == 4
    assert "app.kubernetes.io/component=worker" in scale["status"]["selector"]


def test_liveness_probe_and_metrics(operator: Any, admin: KubeClient, namespace: str) -> None:
    before = REGISTRY.get_sample_value("thumbnail_operator_reconciles_total", {"result": "ok"})
    admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace),
                  body=sample("probed", persistence={"enabled": False}))
    wait_ready(admin, namespace, "probed", timeout=90)
    after = REGISTRY.get_sample_value("thumbnail_operator_reconciles_total", {"result": "ok"})
    assert (after or 0) > (before or 0)
    assert REGISTRY.get_sample_value("thumbnail_operator_reconcile_duration_seconds_count")
    url = f"http://127.0.0.1:{operator.liveness_port}/healthz"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read())["reconcile_passes"] >= 1


def _hashes(admin: KubeClient, namespace: str) -> dict[str, str]:
    result = {}
    for name in ("rotate-server", "rotate-worker"):
        deployment = admin.get(DEPLOYMENT, namespace, name)
        assert deployment is not None
        result[name] = deployment["spec"]["template"]["metadata"]["annotations"][
            c.CONFIG_HASH_ANNOTATION]
    return result
