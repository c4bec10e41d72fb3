"""The one set of helpers tests and benchmarks share: bounded polling, ports, YAML files and
kubectl. Test packages import these instead of each other."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from thumbnail_substrate.binaries import go_tool
from thumbnail_substrate.process import free_port

if TYPE_CHECKING:
    from thumbnail_operator.kube import KubeClient

T = TypeVar("T")
Obj = dict[str, Any]


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll until `probe` returns something truthy; fail with the last value after `timeout`
    seconds. Exceptions of the `ignore` types count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except ignore as err:
            last = err
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


def load_documents(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


class KubectlError(AssertionError):
    def __init__(self, args: tuple[str, ...], stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} failed: {stderr.strip()}")
        self.stderr = stderr


def kubectl(
    kubeconfig: Path | str, *args: str, stdin: str | None = None, timeout: float = 120
) -> str:
    """Run the pinned kubectl against `kubeconfig`; its stdout, or KubectlError."""
    result = subprocess.run(
        [str(go_tool("kubectl")), "--kubeconfig", str(kubeconfig), *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if result.returncode != 0:
        raise KubectlError(args, result.stderr)
    return result.stdout


def kubectl_get(kubeconfig: Path | str, *args: str) -> Obj:
    """`kubectl get ARGS -o json`, parsed."""
    obj: Obj = json.loads(kubectl(kubeconfig, "get", *args, "-o", "json"))
    return obj


__all__ = [
    "KubectlError", "Obj", "free_port", "kubectl", "kubectl_get", "load_documents", "wait_for",
]


# -- objects on a cluster (through the operator's dict client) --------------------------------


def apply_object(kube: KubeClient, obj: Obj, field_manager: str = "tests") -> Obj:
    """Server-side apply of any kind, cluster-scoped ones too (plural = kind + "s", or "ies"
    for a "y": true for every kind the tests and benchmarks install)."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    plural = kind.lower()[:-1] + "ies" if kind.endswith("y") else kind.lower() + "s"
    base = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    result: Obj = kube.request(
        "PATCH", f"{base}/{obj['metadata']['name']}", body=obj,
        query={"fieldManager": field_manager, "force": "true"},
        content_type="application/apply-patch+yaml",
    )
    return result


def ensure_namespace(kube: KubeClient, name: str, labels: dict[str, str] | None = None) -> None:
    """Create a Namespace unless it exists."""
    from thumbnail_operator.kube import ApiError  # the substrate works without the operator

    try:
        kube.request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}}})
    except ApiError as err:
        if not err.conflict:
            raise
