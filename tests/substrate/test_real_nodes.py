"""Two real nodes: Kind's default layout with one worker (the first node also runs the control
plane; both take pods, as the control plane runs as processes beside the node, not as pods).
Two nodes are the fewest that make topology spread and `kubectl drain` real, and each more
node costs about 240 MB and a few seconds of start on these 2-core machines.

Every node has its own network namespace, containerd, kubelet, kube-proxy, kube-router and
pod CIDR; pods reach each other across nodes by pod IP, ClusterIP and DNS name; a drain
evicts through the PodDisruptionBudget; teardown leaves the host as it was."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.substrate.real_pods import (
    HOSTNAME_SERVER,
    READY_ON_8080,
    apply,
    node_images,
    pod,
    wait_ready,
)
from thumbnail_substrate.host_state import HostState, mounts, processes_mentioning
from thumbnail_substrate.images import LocalImage
from thumbnail_substrate.netns import namespaces
from thumbnail_substrate.node import CGROUP_NAME, RealCluster
from thumbnail_substrate.testing import kubectl, kubectl_get, wait_for

NODE_PORT = 30081
NODES = ["real-node", "real-node-2"]
# Fetches each URL once (3 s timeout); prints {url: body, or the error's name} as JSON.
FETCH = (
    "import json, sys, urllib.request\n"
    "out = {}\n"
    "for url in sys.argv[1:]:\n"
    "    try:\n"
    "        out[url] = urllib.request.urlopen(url, timeout=3).read().decode()\n"
    "    except OSError as err:\n"
    "        out[url] = type(err).__name__\n"
    "print(json.dumps(out))\n"
)


@pytest.fixture(scope="module")
def images() -> dict[str, LocalImage]:
    return node_images()


@pytest.fixture(scope="module")
def cluster(images: dict[str, LocalImage]) -> Iterator[tuple[RealCluster, HostState]]:
    before = HostState.capture(CGROUP_NAME)
    real = RealCluster(images=images, nodes=2, node_ports=(NODE_PORT,), quiet=True)
    with real:
        print(f"\n    2 nodes up in {real.startup_seconds:.1f}s: {real.timings}")
        yield real, before


def _deployment(name: str, image: str, replicas: int, **pod_spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    template = pod(name, labels, image, HOSTNAME_SERVER, readinessProbe=READY_ON_8080)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {**template["spec"], **pod_spec}}},
    }


def _pods(cluster: RealCluster, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.request(
        "GET", f"/api/v1/namespaces/default/pods?labelSelector=app%3D{app}")["items"]
    return items


def _is_ready(p: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in p.get("status", {}).get("conditions", []))


def _available(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a PodDisruptionBudget counts as healthy: Ready and not being deleted."""
    return [p for p in pods if _is_ready(p) and not p["metadata"].get("deletionTimestamp")]


def _wait_available(cluster: RealCluster, app: str, count: int) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (found if len(found := _available(_pods(cluster, app))) == count else None),
        timeout=90, what=f"{count} available pods of {app}", interval=0.5,
    )


def test_both_nodes_are_ready_with_their_own_pod_cidr(
    cluster: tuple[RealCluster, HostState],
) -> None:
    real, _ = cluster
    assert real.node_names == NODES
    nodes = {n["metadata"]["name"]: n for n in kubectl_get(real.kubeconfig, "nodes")["items"]}
    assert sorted(nodes) == NODES
    for i, name in enumerate(NODES):
        node = nodes[name]
        assert _is_ready(node), node["status"]["conditions"]
        assert node["spec"]["podCIDR"] == f"10.244.{i}.0/24"
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert addresses["InternalIP"] == f"10.10.0.{i + 1}"
    # Kind's roles: the first node is the control plane, without its taint (both take pods).
    assert "node-role.kubernetes.io/control-plane" in nodes["real-node"]["metadata"]["labels"]
    assert not nodes["real-node"]["spec"].get("taints")
    # The local volumes are spread over the nodes, each pinned to its node.
    placed: dict[str, int] = {}
    for pv in kubectl_get(real.kubeconfig, "pv")["items"]:
        terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        (node_name,) = terms[0]["matchExpressions"][0]["values"]
        assert pv["spec"]["local"]["path"].startswith(str(real.workdir))
        placed[node_name] = placed.get(node_name, 0) + 1
    assert placed == {"real-node": 12, "real-node-2": 12}


def test_topology_spread_puts_one_replica_on_each_node(
    cluster: tuple[RealCluster, HostState], images: dict[str, LocalImage]
) -> None:
    real, _ = cluster
    spread = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
              "whenUnsatisfiable": "DoNotSchedule",
              "labelSelector": {"matchLabels": {"app": "spread"}}}
    apply(real, _deployment("spread", images["wait"].ref, 2,
                            topologySpreadConstraints=[spread]))
    pods = _wait_available(real, "spread", 2)
    placed = {p["spec"]["nodeName"]: p["status"]["podIP"] for p in pods}
    assert sorted(placed) == NODES, placed
    # Each pod's address comes from its own node's CIDR (its CNI's host-local range).
    for i, name in enumerate(NODES):
        assert ipaddress.ip_address(placed[name]) in ipaddress.ip_network(f"10.244.{i}.0/24")
    kubectl(real.kubeconfig, "delete", "deployment", "spread", "--wait=false")


def test_pods_reach_each_other_across_nodes_by_ip_service_and_dns(
    cluster: tuple[RealCluster, HostState], images: dict[str, LocalImage]
) -> None:
    """A server pod on each node with its own Service; each reaches the other by pod IP,
    ClusterIP (kube-proxy of the client's node) and DNS name (CoreDNS on the first node, so
    across nodes for the second). The host reaches the second node's pod through a NodePort
    on the first node."""
    real, _ = cluster
    for node in NODES:
        service_type = "NodePort" if node == "real-node-2" else "ClusterIP"
        port: dict[str, Any] = {"port": 80, "targetPort": 8080}
        if service_type == "NodePort":
            port["nodePort"] = NODE_PORT
        apply(
            real,
            pod(f"echo-{node}", {"echo": node}, images["wait"].ref, HOSTNAME_SERVER,
                node=node, readinessProbe=READY_ON_8080),
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"echo-{node}"},
             "spec": {"type": service_type, "selector": {"echo": node}, "ports": [port]}},
        )
    wait_ready(real, *(f"echo-{node}" for node in NODES))
    for client, server in (NODES, NODES[::-1]):
        server_pod = kubectl_get(real.kubeconfig, "pod", f"echo-{server}")
        assert server_pod["spec"]["nodeName"] == server
        cluster_ip = kubectl_get(real.kubeconfig, "service", f"echo-{server}")["spec"][
            "clusterIP"]
        urls = [f"http://{server_pod['status']['podIP']}:8080", f"http://{cluster_ip}",
                f"http://echo-{server}.default.svc.cluster.local"]

        def answered(client: str = client, server: str = server,
                     urls: list[str] = urls) -> dict[str, str] | None:
            out = kubectl(real.kubeconfig, "exec", f"echo-{client}", "--", "python3", "-c",
                          FETCH, *urls, timeout=30)
            got: dict[str, str] = json.loads(out)
            return got if set(got.values()) == {f"echo-{server}"} else None

        # Bounded: kube-proxy programs a new Service within its 5 s sync.
        answers = wait_for(answered, timeout=30, interval=1,
                           what=f"echo-{client} reaching echo-{server}")
        assert list(answers) == urls

    def node_port() -> str:
        with urllib.request.urlopen(real.node_port_url(NODE_PORT), timeout=5) as resp:
            return str(resp.read().decode())

    assert wait_for(node_port, timeout=30, what="the NodePort",
                    ignore=(OSError,)) == "echo-real-node-2"
    kubectl(real.kubeconfig, "delete", "pod,service", "echo-real-node", "echo-real-node-2",
            "--wait=true", "--timeout=60s")


class _Sampler(threading.Thread):
    """Lists the pods of `app` every 0.2 s until stopped: (time, pods) samples."""

    def __init__(self, cluster: RealCluster, app: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.app = cluster, app
        self.samples: list[tuple[float, list[dict[str, Any]]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.monotonic(), _pods(self.cluster, self.app)))
            self.halt.wait(0.2)

    def first(self, condition: Callable[[list[dict[str, Any]]], bool]) -> float:
        """When a sample first met `condition`."""
        return min(t for t, pods in self.samples if condition(pods))


def test_drain_evicts_one_pod_at_a_time_through_the_disruption_budget(
    cluster: tuple[RealCluster, HostState], images: dict[str, LocalImage]
) -> None:
    """Both replicas start on real-node-2 (the other node cordoned meanwhile); with
    `minAvailable: 1` the drain may evict the second only once the first one's replacement
    is Ready on real-node. Never is no replica available; the node ends cordoned and empty."""
    real, _ = cluster
    kubectl(real.kubeconfig, "cordon", "real-node")
    apply(real, _deployment("drain", images["wait"].ref, 2))
    originals = _wait_available(real, "drain", 2)
    assert {p["spec"]["nodeName"] for p in originals} == {"real-node-2"}
    kubectl(real.kubeconfig, "uncordon", "real-node")
    apply(real, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                 "metadata": {"name": "drain"},
                 "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "drain"}}}})
    wait_for(
        lambda: kubectl_get(real.kubeconfig, "pdb", "drain").get("status", {}).get(
            "disruptionsAllowed") == 1,
        timeout=30, what="the PodDisruptionBudget to allow one disruption", interval=0.5,
    )

    # Their token volumes, mounted by real-node-2's kubelet in its own mount namespace,
    # show on the host (containerd needs them there).
    uids = [p["metadata"]["uid"] for p in originals]
    assert all(any(uid in m for m in mounts()) for uid in uids)

    sampler = _Sampler(real, "drain")
    sampler.start()
    wait_for(lambda: sampler.samples, timeout=10, what="a first sample")
    try:
        kubectl(real.kubeconfig, "drain", "real-node-2", "--ignore-daemonsets",
                "--delete-emptydir-data", "--timeout=120s", timeout=150)
        _wait_available(real, "drain", 2)
    finally:
        sampler.halt.set()
        sampler.join(10)

    # Never were both replicas gone at once.
    low = min(len(_available(pods)) for _, pods in sampler.samples)
    assert low >= 1, "both replicas were unavailable at once during the drain"
    # One at a time: the second original went only after a replacement was Ready elsewhere.
    names = {p["metadata"]["name"] for p in originals}

    def available(pods: list[dict[str, Any]]) -> set[str]:
        return {p["metadata"]["name"] for p in _available(pods)}

    def without(name: str) -> Callable[[list[dict[str, Any]]], bool]:
        return lambda pods: name not in available(pods)

    gone = sorted(sampler.first(without(name)) for name in names)
    replacement_ready = sampler.first(lambda pods: bool(available(pods) - names))
    assert gone[0] < replacement_ready < gone[1], (gone, replacement_ready)
    # The node ends cordoned, with none of them left on it.
    assert kubectl_get(real.kubeconfig, "node", "real-node-2")["spec"].get("unschedulable")
    remaining = {p["spec"].get("nodeName") for p in _pods(real, "drain")}
    assert remaining == {"real-node"}, remaining
    # The kubelet unmounted them in its namespace; that reached the host too.
    wait_for(lambda: not [m for m in mounts() if any(uid in m for uid in uids)], timeout=30,
             what="the evicted pods' volume mounts to go from the host", interval=0.5)
    kubectl(real.kubeconfig, "uncordon", "real-node-2")
    kubectl(real.kubeconfig, "delete", "deployment,pdb", "drain", "--wait=false")


def test_teardown_of_both_nodes_leaves_nothing_behind(
    cluster: tuple[RealCluster, HostState], images: dict[str, LocalImage]
) -> None:
    """Last in this module: a pod on each node, then the module's cluster stops here."""
    real, before = cluster
    for node in NODES:
        apply(real, pod(f"sleeper-{node}", {"app": "sleeper"}, images["wait"].ref,
                        ["sleep", "3600"], node=node))
    wait_ready(real, *(f"sleeper-{node}" for node in NODES))
    during = HostState.capture(CGROUP_NAME)
    assert set(real.namespaces) <= during.netns
    workdir, owned = real.workdir, real.namespaces
    real.close()
    assert before.differences(HostState.capture(CGROUP_NAME)) == []
    assert not set(owned) & namespaces()
    assert processes_mentioning(str(workdir)) == []
    assert not workdir.exists()
