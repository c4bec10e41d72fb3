"""An operator upgrade on real pods, as a user does it: the previous release stored
`v1alpha1` (the CRD's storage version is switched back to it to stand for that release) and
a `v1alpha1` object is written through the conversion webhook served from the operator's pod;
then the new release is applied (`kubectl apply -k`, new operator image, CRD storing `v1`):
a new operator pod runs the stored-version migration, `storedVersions` ends as `["v1"]`,
the object reads back losslessly in both versions, and the running service keeps
answering throughout."""

from __future__ import annotations

import copy
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import NAMESPACE, ROOT, E2ECluster, Service, pods
from thumbnail_substrate.deploy import (
    OPERATOR_NAMESPACE,
    deployment_available,
    install_operator,
)
from thumbnail_substrate.testing import load_documents, wait_for

pytestmark = pytest.mark.e2e

LEGACY = "legacy"
CRD = "thumbnailservices.thumbnails.platform.dev"
V1ALPHA1_IMAGE_FIELDS = {
    "server": "server", "worker": "worker", "postgresql": "postgresql", "redis": "redis",
    "minio": "minio", "mc": "minioClient", "wait": "wait",
}


def legacy_object(images: dict[str, str]) -> dict[str, Any]:
    """The shipped v1alpha1 sample as a second, small service: no API or worker pods, no
    node ports, local images."""
    body = copy.deepcopy(load_documents(ROOT / "crds/samples/thumbnailservice-v1alpha1.yaml")[0])
    body["metadata"] = {"name": LEGACY, "namespace": NAMESPACE}
    spec = body["spec"]
    spec["server"] = {"replicas": 0}
    spec["worker"] = {"replicas": 0}
    spec["minio"].pop("console", None)
    spec["images"] = {
        field: dict(zip(("repository", "tag"), images[c].rsplit(":", 1), strict=True),
                    pullPolicy="IfNotPresent")
        for c, field in V1ALPHA1_IMAGE_FIELDS.items() if c in images
    }
    return body


class Availability:
    """Polls /healthz in the background; counts what did not answer 200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self._stop.wait(0.25):
                try:
                    status = http.get("/healthz").status_code
                except httpx.HTTPError as err:
                    self.failed.append(repr(err))
                    continue
                if status == 200:
                    self.ok += 1
                else:
                    self.failed.append(str(status))

    def __enter__(self) -> Availability:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def store_as(cluster: E2ECluster, version: str) -> None:
    """Make `version` the CRD's storage version (what the previous release shipped)."""
    crd = cluster.get("crd", CRD)
    for served in crd["spec"]["versions"]:
        served["storage"] = served["name"] == version
    crd.pop("status", None)
    cluster.kubectl("replace", "-f", "-", stdin=json.dumps(crd))


def _read(cluster: E2ECluster, version: str) -> dict[str, Any]:
    obj = cluster.get("-n", NAMESPACE, f"thumbnailservices.{version}.thumbnails.platform.dev",
                      LEGACY)
    return obj


def test_operator_upgrade_migrates_storage_and_keeps_serving(
    e2e_cluster: E2ECluster, service: Service, operator: str
) -> None:
    store_as(e2e_cluster, "v1alpha1")
    legacy = legacy_object(e2e_cluster.images)
    e2e_cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(legacy))
    stored = e2e_cluster.get("crd", CRD)["status"]["storedVersions"]
    assert "v1alpha1" in stored, stored
    before_v1alpha1 = _read(e2e_cluster, "v1alpha1")
    before_v1 = _read(e2e_cluster, "v1")
    assert before_v1["apiVersion"].endswith("/v1")
    assert contains(before_v1alpha1["spec"], legacy["spec"]), before_v1alpha1["spec"]
    serving = {p["metadata"]["uid"] for p in pods(
        e2e_cluster, f"app.kubernetes.io/instance={service.name}")}
    (old_operator,) = pods(e2e_cluster, "app.kubernetes.io/name=thumbnail-operator",
                           OPERATOR_NAMESPACE)

    repository, _, tag = operator.rpartition(":")
    bumped = f"{repository}:{tag}-next"
    e2e_cluster.retag("operator", bumped)
    with Availability(e2e_cluster.api_url) as availability, tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        # The new release: CRD (storing v1 again), RBAC and the operator with the new image.
        install_operator(e2e_cluster.kubeconfig, bumped, Path(tmp), timeout=240)

        def new_operator_running() -> dict[str, Any] | None:
            if not deployment_available(e2e_cluster.kubeconfig, OPERATOR_NAMESPACE,
                                        "thumbnail-operator"):
                return None
            now = pods(e2e_cluster, "app.kubernetes.io/name=thumbnail-operator",
                       OPERATOR_NAMESPACE)
            fresh = [p for p in now if p["metadata"]["uid"] != old_operator["metadata"]["uid"]]
            return fresh[0] if len(now) == 1 and fresh else None

        new = wait_for(new_operator_running, timeout=240, what="the upgraded operator pod",
                       interval=1)
        assert new["spec"]["containers"][0]["image"] == bumped

        def migrated() -> str | None:
            log = e2e_cluster.kubectl("-n", OPERATOR_NAMESPACE, "logs", new["metadata"]["name"])
            lines = [line for line in log.splitlines() if "storage migration to v1" in line]
            return lines[-1] if lines else None

        line = wait_for(migrated, timeout=120, what="the storage migration log line",
                        interval=1)
        print(f"operator upgraded in {time.monotonic() - started:.1f}s: {line}")
        assert "failed 0" in line and "re-stored 0" not in line, line
        stored = e2e_cluster.get("crd", CRD)["status"]["storedVersions"]
        assert stored == ["v1"], stored
        time.sleep(3)  # serving must also hold a moment after the new pod took over
    assert availability.ok > 0 and not availability.failed, availability.failed
    # Losslessly readable as both versions, served by the new operator's webhook.
    after_v1alpha1, after_v1 = _read(e2e_cluster, "v1alpha1"), _read(e2e_cluster, "v1")
    assert after_v1alpha1["spec"] == before_v1alpha1["spec"]
    assert after_v1["spec"] == before_v1["spec"]
    # The running service's pods were not touched by the upgrade.
    still = {p["metadata"]["uid"] for p in pods(
        e2e_cluster, f"app.kubernetes.io/instance={service.name}")}
    assert serving <= still, serving - still


def contains(whole: Any, part: Any) -> bool:
    """Every field of `part` is in `whole` with the same value (defaults may add more)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and contains(whole[k], v) for k, v in part.items()
        )
    return bool(whole == part)
