"""Fixtures for the upgrade acceptance tests: the previous release's CRD, the conversion
webhook running as the operator runs it (certificates from a Secret, caBundle published in
the CRD), stoppable to simulate an outage, and direct reads of etcd to see storage versions.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from thumbnail_operator.kube import ApiError, KubeClient, load_configuration
from thumbnail_operator.webhook.certmanager import CRD_NAME, CRD_PATH
from thumbnail_substrate.local_webhook import BackgroundWebhook
from thumbnail_substrate.testing import apply_object, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS_CRD = ROOT / "crds" / "history" / "thumbnailservices-v1alpha1.yaml"
CURRENT_CRD = ROOT / "crds" / "thumbnailservices.yaml"
# The operator under test also watches ThumbnailBackups (unchanged by these upgrades).
BACKUP_CRD = ROOT / "crds" / "thumbnailbackups.yaml"
Obj = dict[str, Any]


def load(path: Path) -> Obj:
    document: Obj = yaml.safe_load(path.read_text())
    return document


def crd_path(subresource: str = "") -> str:
    return f"{CRD_PATH}/{CRD_NAME}{'/' + subresource if subresource else ''}"


def get_crd(kube: KubeClient) -> Obj | None:
    try:
        return kube.request("GET", crd_path())
    except ApiError as err:
        if err.not_found:
            return None
        raise


def apply_crd(kube: KubeClient, crd: Obj) -> Obj:
    crd = {k: v for k, v in crd.items() if k != "status"}
    return kube.request(
        "PATCH", crd_path(), body=crd, query={"fieldManager": "upgrade-tests", "force": "true"},
        content_type="application/apply-patch+yaml",
    )


def wait_established(kube: KubeClient) -> Obj:
    def established() -> Obj | None:
        crd = get_crd(kube)
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        return crd if ok else None

    return wait_for(established, timeout=30, what="CRD established")


def delete_crd(kube: KubeClient) -> None:
    try:
        kube.request("DELETE", crd_path())
    except ApiError as err:
        if not err.not_found:
            raise
    wait_for(lambda: get_crd(kube) is None, timeout=60, what="CRD deleted")


@pytest.fixture(scope="module")
def kube(kube_cluster: Any) -> Iterator[KubeClient]:
    client = KubeClient(load_configuration(str(kube_cluster.kubeconfig)))
    apply_object(client, load(BACKUP_CRD))
    yield client
    client.close()


@pytest.fixture(scope="module")
def previous_release(kube: KubeClient, webhook: BackgroundWebhook) -> Iterator[Obj]:
    """A cluster that never saw v1: the frozen v1alpha1-only CRD, freshly installed."""
    if get_crd(kube) is not None:  # shared session: start from the previous release
        delete_crd(kube)
    apply_crd(kube, load(PREVIOUS_CRD))
    yield wait_established(kube)
    delete_crd(kube)  # while the webhook still runs (it is set up first, torn down last)


@pytest.fixture(scope="module")
def webhook(kube: KubeClient) -> Iterator[BackgroundWebhook]:
    runner = BackgroundWebhook(kube, free_port())
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def namespace(kube: KubeClient) -> Iterator[str]:
    name = f"upgrade-{uuid.uuid4().hex[:6]}"
    kube.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def etcd(kube_cluster: Any) -> Callable[[str], Obj | None]:
    """Read one raw object from etcd (JSON gateway): what the API server really stored."""
    port = kube_cluster._etcd_port

    def read(key: str) -> Obj | None:
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/range", data=body,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            kvs = json.loads(response.read()).get("kvs") or []
        if not kvs:
            return None
        stored: Obj = json.loads(base64.b64decode(kvs[0]["value"]))
        return stored

    return read


def kubectl(kubeconfig: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=60, check=False)
