"""Helpers for the operator's integration tests (real control plane, operator in-process)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from thumbnail_operator import constants as c
from thumbnail_operator.kube import (
    CHILD_KINDS,
    THUMBNAIL_SERVICE_V1ALPHA1,
    ApiError,
    Kind,
    KubeClient,
)
from thumbnail_substrate import testing
from thumbnail_substrate.deploy import OPERATOR_NAMESPACE
from thumbnail_substrate.operator_harness import OPERATOR_ACCOUNT, InProcessOperator, sample
from thumbnail_substrate.testing import apply_object, free_port, load_documents

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "thumbnailservices.yaml"
BACKUP_CRD_FILE = ROOT / "crds" / "thumbnailbackups.yaml"
POLICIES_FILE = ROOT / "manifests" / "policies" / "deletion-protection.yaml"
RBAC_FILE = ROOT / "operator" / "rbac.yaml"
PEERING_FILE = ROOT / "operator" / "kopf-peering.yaml"

T = TypeVar("T")
Obj = dict[str, Any]


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 30.0, what: str = "condition",
    interval: float = 0.2,
) -> T:
    """The shared wait_for with this package's defaults."""
    return testing.wait_for(probe, timeout=timeout, what=what, interval=interval)


LEASE = Kind("coordination.k8s.io/v1", "Lease", "leases")


def create_tns(kube: KubeClient, namespace: str, body: Obj) -> Obj:
    """POST `body` (a v1alpha1 sample) into `namespace`."""
    body["metadata"]["namespace"] = namespace
    return kube.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace), body=body)


def get_tns(kube: KubeClient, namespace: str, name: str) -> Obj | None:
    return kube.get(THUMBNAIL_SERVICE_V1ALPHA1, namespace, name)


def patch_tns(kube: KubeClient, namespace: str, name: str, spec_patch: Obj) -> Obj:
    return kube.request(
        "PATCH", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace, name), body={"spec": spec_patch},
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


__all__ = [
    "OPERATOR_ACCOUNT", "OPERATOR_NAMESPACE", "InProcessOperator", "apply_object", "free_port",
    "load_documents", "sample",
]
