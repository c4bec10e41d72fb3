"""Helpers for the operator's integration tests (real control plane, operator in-process)."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client

from tests.upgrade.local_webhook import LOCAL_HOSTS
from thumbnail_operator import constants as c
from thumbnail_operator.conversion.certmanager import CertificateSettings
from thumbnail_operator.conversion.runtime import ConversionSettings
from thumbnail_operator.kube import CHILD_KINDS, THUMBNAIL_SERVICE, ApiError, Kind, KubeClient
from thumbnail_operator.runner import RunOptions, run_operator
from thumbnail_operator.runtime import Runtime
from thumbnail_substrate import testing
from thumbnail_substrate.testing import free_port, load_documents

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "thumbnailservices.yaml"
RBAC_FILE = ROOT / "operator" / "rbac.yaml"
# The tests write v1alpha1 (THUMBNAIL_SERVICE) with spec overrides in its layout.
SAMPLE_FILE = ROOT / "crds" / "samples" / "thumbnailservice-v1alpha1.yaml"
PEERING_FILE = ROOT / "operator" / "kopf-peering.yaml"
OPERATOR_NAMESPACE = "thumbnail-system"
OPERATOR_ACCOUNT = "thumbnail-operator"

T = TypeVar("T")
Obj = dict[str, Any]


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 30.0, what: str = "condition",
    interval: float = 0.2,
) -> T:
    """The shared wait_for with this package's defaults."""
    return testing.wait_for(probe, timeout=timeout, what=what, interval=interval)


def sample(name: str, **spec_overrides: Any) -> Obj:
    """The shipped sample, renamed, without node ports (they are unique cluster-wide)."""
    body = copy.deepcopy(load_documents(SAMPLE_FILE)[0])
    body["metadata"]["name"] = name
    spec = body["spec"]
    spec["server"]["service"]["nodePort"]["enabled"] = False
    spec["minio"]["console"]["nodePort"]["enabled"] = False
    for key, value in spec_overrides.items():
        spec[key] = value
    return body


LEASE = Kind("coordination.k8s.io/v1", "Lease", "leases")


def apply_cluster_object(kube: KubeClient, obj: Obj) -> Obj:
    """Server-side apply for any kind, including cluster-scoped ones."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    plural = kind.lower() + "s"  # true for every kind the tests install
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    base = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    return kube.request(
        "PATCH",
        f"{base}/{obj['metadata']['name']}",
        body=obj,
        query={"fieldManager": "tests", "force": "true"},
        content_type="application/apply-patch+yaml",
    )


def get_tns(kube: KubeClient, namespace: str, name: str) -> Obj | None:
    return kube.get(THUMBNAIL_SERVICE, namespace, name)


def patch_tns(kube: KubeClient, namespace: str, name: str, spec_patch: Obj) -> Obj:
    return kube.request(
        "PATCH", THUMBNAIL_SERVICE.path(namespace, name), body={"spec": spec_patch},
        content_type="application/merge-patch+json",
    )


def condition(obj: Obj | None, type_: str) -> Obj | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == type_:
            return dict(cond)
    return None


def children(kube: KubeClient, namespace: str, instance: str) -> dict[tuple[str, str], Obj]:
    found: dict[tuple[str, str], Obj] = {}
    for kind in CHILD_KINDS:
        for obj in kube.list(kind, namespace, {c.LABEL_INSTANCE: instance}):
            found[(kind.kind, obj["metadata"]["name"])] = obj
    return found


def resource_versions(kube: KubeClient, namespace: str, instance: str) -> dict[str, str]:
    versions = {
        f"{kind}/{name}": obj["metadata"]["resourceVersion"]
        for (kind, name), obj in children(kube, namespace, instance).items()
    }
    cr = get_tns(kube, namespace, instance)
    if cr is not None:
        versions["ThumbnailService"] = cr["metadata"]["resourceVersion"]
    return versions


def wait_ready(kube: KubeClient, namespace: str, name: str, timeout: float = 60.0) -> Obj:
    def ready() -> Obj | None:
        cr = get_tns(kube, namespace, name)
        cond = condition(cr, "Ready")
        generation = (cr or {}).get("metadata", {}).get("generation")
        observed = ((cr or {}).get("status") or {}).get("observedGeneration")
        if cond and cond["status"] == "True" and generation == observed:
            return cr
        return None

    return wait_for(ready, timeout=timeout, what=f"{namespace}/{name} Ready")


def wait_quiet(
    kube: KubeClient, namespace: str, instance: str, quiet: float = 3.0, timeout: float = 60.0
) -> dict[str, str]:
    """Wait until no child nor the resource changes for `quiet` seconds; return versions."""
    deadline = time.monotonic() + timeout
    last = resource_versions(kube, namespace, instance)
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = resource_versions(kube, namespace, instance)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            return now
    raise AssertionError(f"{namespace}/{instance} never settled: {last}")


def expect_api_error(call: Callable[[], object]) -> ApiError:
    try:
        call()
    except ApiError as err:
        return err
    raise AssertionError("the API server accepted the request")


class InProcessOperator:
    """The real operator (kopf + reconciler) in a background thread, restartable."""

    def __init__(
        self, configuration: client.Configuration, resync_seconds: float = 30.0,
        peering: str | None = None, priority: int | None = None,
    ):
        self.configuration = configuration
        self.resync_seconds = resync_seconds
        self.liveness_port = free_port()
        self.options = RunOptions(
            resync_seconds=resync_seconds, liveness_port=self.liveness_port,
            peering=peering, priority=priority,
            # Its own conversion webhook too (certificate Secret, caBundle, migration) under
            # the ServiceAccount's RBAC; the API server uses the session's shared one.
            conversion=ConversionSettings(
                certificates=CertificateSettings(namespace=OPERATOR_NAMESPACE,
                                                 hosts=list(LOCAL_HOSTS)),
                host="127.0.0.1", port=free_port(), check_seconds=30,
            ),
        )
        self.runtime: Runtime | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.errors: list[BaseException] = []

    def start(self) -> None:
        self._stop = threading.Event()
        ready = threading.Event()
        self.runtime = Runtime(self.configuration, resync_seconds=self.resync_seconds)
        runtime = self.runtime

        def main() -> None:
            try:
                asyncio.run(
                    run_operator(
                        self.configuration,
                        self.options,
                        runtime=runtime,
                        stop_flag=self._stop,
                        ready_flag=ready,
                    )
                )
            except BaseException as err:  # surfaced by the fixture
                self.errors.append(err)
                ready.set()

        self._thread = threading.Thread(target=main, name="thumbnail-operator", daemon=True)
        self._thread.start()
        assert ready.wait(30), "operator did not become ready"
        assert not self.errors, self.errors

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "operator did not stop"

    @contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


