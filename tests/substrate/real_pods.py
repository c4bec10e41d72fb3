"""Pods and waits shared by the real-cluster tests (test_real_node.py, test_real_nodes.py)."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.images import LocalImage, local_images
from thumbnail_substrate.node import RealCluster
from thumbnail_substrate.testing import kubectl, kubectl_get, wait_for

NON_ROOT = {"runAsUser": 10001, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
# An HTTP server on 8080 that answers with its pod's name (the wait image's python3).
HOSTNAME_SERVER = [
    "python3", "-c",
    "import http.server, socket\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = socket.gethostname().encode()\n"
    "        self.send_response(200)\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "http.server.HTTPServer(('', 8080), H).serve_forever()\n",
]
READY_ON_8080 = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}


def node_images() -> dict[str, LocalImage]:
    """The two images these tests run: the sandbox's `pause` and `wait` (sh, nc, python3)."""
    try:
        found = local_images()
    except SubstrateError as err:
        pytest.fail(str(err))
    return {name: found[name] for name in ("pause", "wait")}


def apply(cluster: RealCluster, *objects: dict[str, Any]) -> None:
    for obj in objects:
        kubectl(cluster.kubeconfig, "apply", "-f", "-", stdin=json.dumps(obj))


def pod(name: str, labels: dict[str, str], image: str, command: list[str], *,
        node: str | None = None, **container: Any) -> dict[str, Any]:
    """A non-root pod of one container (`container` adds fields), on `node` if given."""
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 0,
        "containers": [{
            "name": "c", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": command, "securityContext": NON_ROOT, **container}],
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels}, "spec": spec}


def ready(cluster: RealCluster, name: str) -> bool:
    conditions = kubectl_get(cluster.kubeconfig, "pod", name)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_ready(cluster: RealCluster, *names: str) -> None:
    for name in names:
        wait_for(functools.partial(ready, cluster, name), timeout=60, what=f"{name} Ready",
                 interval=0.5)
