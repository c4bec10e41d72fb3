"""The substrate's real node: containers really run (pod network, Service and NodePort through
kube-proxy, cluster DNS, exec and logs), pulls never leave the machine, and teardown leaves
the host as it found it (processes, mounts, cgroups, namespaces, sysctls, fixed paths)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.host_state import HostState, processes_mentioning
from thumbnail_substrate.images import LocalImage, local_images
from thumbnail_substrate.node import CGROUP_NAME, RealCluster
from thumbnail_substrate.testing import kubectl, wait_for

NODE_PORT = 30080
# A one-line HTTP server from the dependency-wait image (sh + netcat-openbsd).
HTTP_SERVER = (
    'while true; do printf "HTTP/1.0 200 OK\\r\\n\\r\\nhello from $(hostname)" '
    "| nc -l -p 8080 -q 1 >/dev/null; done"
)


@pytest.fixture(scope="module")
def images() -> dict[str, LocalImage]:
    try:
        found = local_images()
    except SubstrateError as err:
        pytest.fail(str(err))
    return {name: found[name] for name in ("pause", "wait")}


@pytest.fixture(scope="module")
def node(images: dict[str, LocalImage]) -> Iterator[tuple[RealCluster, HostState]]:
    before = HostState.capture(CGROUP_NAME)
    cluster = RealCluster(images=images, node_ports=(NODE_PORT,), quiet=True)
    with cluster:
        yield cluster, before


def _apply(cluster: RealCluster, *objects: dict[str, Any]) -> None:
    for obj in objects:
        kubectl(cluster.kubeconfig, "apply", "-f", "-", stdin=json.dumps(obj))


def _pod_phase(cluster: RealCluster, name: str) -> str:
    return kubectl(cluster.kubeconfig, "get", "pod", name, "-o", "jsonpath={.status.phase}")


def test_pods_run_and_are_reachable_through_a_node_port(
    node: tuple[RealCluster, HostState], images: dict[str, LocalImage]
) -> None:
    cluster, _ = node
    labels = {"app": "hello"}
    container = {
        "name": "http", "image": images["wait"].ref, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", HTTP_SERVER],
        "securityContext": {"runAsUser": 10001, "runAsNonRoot": True,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    }
    _apply(
        cluster,
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello"},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"},
         "spec": {"type": "NodePort", "selector": labels,
                  "ports": [{"port": 80, "targetPort": 8080, "nodePort": NODE_PORT}]}},
    )
    wait_for(
        lambda: kubectl(cluster.kubeconfig, "get", "deployment", "hello", "-o",
                        "jsonpath={.status.readyReplicas}") == "2",
        timeout=90, what="two ready pods", interval=0.5,
    )

    def answer() -> str:
        with urllib.request.urlopen(cluster.node_port_url(NODE_PORT), timeout=5) as resp:
            return str(resp.read().decode())

    # kube-proxy balances the NodePort over both pods (bounded: 40 requests).
    seen = {wait_for(answer, timeout=30, what="the NodePort", ignore=(OSError,))}
    for _ in range(40):
        seen.add(wait_for(answer, timeout=10, what="the NodePort", ignore=(OSError,)))
        if len(seen) == 2:
            break
    assert len(seen) == 2 and all(s.startswith("hello from hello-") for s in seen), seen

    pod = kubectl(cluster.kubeconfig, "get", "pods", "-l", "app=hello", "-o",
                  "jsonpath={.items[0].metadata.name}")
    # exec works, the UID is the one asked for, the root filesystem is read-only.
    assert kubectl(cluster.kubeconfig, "exec", pod, "--", "id", "-u").strip() == "10001"
    with pytest.raises(AssertionError, match="Read-only file system"):
        kubectl(cluster.kubeconfig, "exec", pod, "--", "touch", "/x")
    # Cluster DNS: Service names resolve to their ClusterIP, the API server's too.
    cluster_ip = kubectl(cluster.kubeconfig, "get", "service", "hello", "-o",
                         "jsonpath={.spec.clusterIP}")
    resolved = kubectl(cluster.kubeconfig, "exec", pod, "--", "getent", "hosts",
                       "hello.default.svc.cluster.local")
    assert resolved.split()[0] == cluster_ip, resolved
    api = kubectl(cluster.kubeconfig, "exec", pod, "--", "getent", "hosts", "kubernetes.default")
    assert api.split()[0] == "10.96.0.1", api


def test_a_missing_image_fails_at_once_without_leaving_the_machine(
    node: tuple[RealCluster, HostState],
) -> None:
    cluster, _ = node
    _apply(cluster, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "missing"},
        "spec": {"containers": [{"name": "c", "image": "registry.example/nope:1"}]},
    })

    def pull_failed() -> str:
        out = kubectl(cluster.kubeconfig, "get", "pod", "missing", "-o",
                      "jsonpath={.status.containerStatuses[0].state.waiting.message}")
        return out if "127.0.0.1:1" in out else ""

    message = wait_for(pull_failed, timeout=30, what="the pull to fail locally", interval=0.5)
    assert "connection refused" in message, message


def test_teardown_leaves_nothing_behind(
    node: tuple[RealCluster, HostState], images: dict[str, LocalImage]
) -> None:
    """Last in this module: stops the module's node itself (closing twice is harmless)."""
    cluster, before = node
    _apply(cluster, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
        "spec": {"containers": [{"name": "c", "image": images["wait"].ref,
                                 "command": ["sleep", "3600"]}]},
    })
    wait_for(lambda: _pod_phase(cluster, "sleeper") == "Running", timeout=60,
             what="a running pod", interval=0.5)
    during = HostState.capture(CGROUP_NAME)
    assert before.differences(during), "a running node should show in the host state"
    workdir = cluster.workdir
    cluster.close()
    assert before.differences(HostState.capture(CGROUP_NAME)) == []
    assert processes_mentioning(str(workdir)) == []
    assert not workdir.exists()
