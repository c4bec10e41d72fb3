"""The substrate's real node: containers really run (pod network, Service and NodePort through
kube-proxy, cluster DNS, exec and logs), NetworkPolicies are enforced (kube-router's
firewall), pulls never leave the machine, and teardown leaves the host as it found it
(processes, mounts, cgroups, namespaces, sysctls, fixed paths)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from tests.substrate.real_pods import apply, node_images, pod, ready, wait_ready
from thumbnail_substrate.host_state import HostState, processes_mentioning
from thumbnail_substrate.images import LocalImage
from thumbnail_substrate.node import CGROUP_NAME, RealCluster
from thumbnail_substrate.testing import kubectl, wait_for

NODE_PORT = 30080
# A one-line HTTP server from the dependency-wait image (sh + netcat-openbsd).
HTTP_SERVER = (
    'while true; do printf "HTTP/1.0 200 OK\\r\\n\\r\\nhello from $(hostname)" '
    "| nc -l -p 8080 -q 1 >/dev/null; done"
)
# One TCP connect with a 3 s timeout, run in a client pod: "connected", or the error's name
# (ConnectionRefusedError for kube-router's REJECT, TimeoutError for a dropped SYN).
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
    "    print('connected')\n"
    "except OSError as err:\n"
    "    print(type(err).__name__)\n"
)


@pytest.fixture(scope="module")
def images() -> dict[str, LocalImage]:
    return node_images()


@pytest.fixture(scope="module")
def node(images: dict[str, LocalImage]) -> Iterator[tuple[RealCluster, HostState]]:
    before = HostState.capture(CGROUP_NAME)
    cluster = RealCluster(images=images, node_ports=(NODE_PORT,), quiet=True)
    with cluster:
        yield cluster, before


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
    apply(
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
    apply(cluster, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "missing"},
        "spec": {"containers": [{"name": "c", "image": "registry.example/nope:1"}]},
    })

    def pull_failed() -> str:
        out = kubectl(cluster.kubeconfig, "get", "pod", "missing", "-o",
                      "jsonpath={.status.containerStatuses[0].state.waiting.message}")
        return out if "127.0.0.1:1" in out else ""

    message = wait_for(pull_failed, timeout=30, what="the pull to fail locally", interval=0.5)
    assert "connection refused" in message, message


def test_kube_router_shares_kube_proxys_iptables_backend(
    node: tuple[RealCluster, HostState],
) -> None:
    """Both run the `iptables` the node's PATH names (Debian 12: iptables-nft); their chains
    must sit in the same backend, and the other one must stay empty."""
    cluster, _ = node
    backend = cluster.netns.run("iptables", "--version")
    nft = "nf_tables" in backend
    rules = cluster.netns.run("iptables-save", "-t", "filter")
    assert ":KUBE-ROUTER-FORWARD " in rules and ":KUBE-SERVICES " in rules, rules
    other = cluster.netns.run("iptables-legacy-save" if nft else "iptables-nft-save")
    assert "KUBE-" not in other, f"{backend.strip()}; the other backend has:\n{other}"


def _connect(cluster: RealCluster, client: str, host: str, port: int) -> str:
    """One connect from `client`'s pod; bounded twice: the 3 s connect timeout inside,
    kubectl's own timeout outside."""
    return kubectl(cluster.kubeconfig, "exec", client, "--", "python3", "-c", CONNECT, host,
                   str(port), timeout=30).strip()


def test_network_policies_are_enforced(
    node: tuple[RealCluster, HostState], images: dict[str, LocalImage]
) -> None:
    """A policy that selects the server and admits only `role: allowed` blocks the other
    client, lets the allowed one through and the kubelet's probes (from the node); deleting
    it restores access. Fails on a node without kube-router (the denied client connects)."""
    cluster, _ = node
    image = images["wait"].ref  # the base image's python3
    apply(
        cluster,
        pod("np-server", {"app": "np-server"}, image,
            ["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"],
            readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1,
                            "failureThreshold": 1}),
        pod("np-allowed", {"role": "allowed"}, image, ["sleep", "3600"]),
        pod("np-denied", {"role": "other"}, image, ["sleep", "3600"]),
    )
    wait_ready(cluster, "np-server", "np-allowed", "np-denied")
    server_ip = kubectl(cluster.kubeconfig, "get", "pod", "np-server", "-o",
                        "jsonpath={.status.podIP}")

    def connect(client: str) -> str:
        return _connect(cluster, client, server_ip, 8080)

    def connects(client: str) -> bool:
        return connect(client) == "connected"

    # Without a policy both clients reach the server.
    for client in ("np-allowed", "np-denied"):
        wait_for(lambda client=client: connects(client), timeout=30,
                 what=f"{client} to connect without a policy", interval=0.5)

    policy = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "np-server-ingress"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "np-server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "allowed"}}}],
                         "ports": [{"protocol": "TCP", "port": 8080}]}],
        },
    }
    apply(cluster, policy)

    def refused() -> str:
        result = connect("np-denied")
        return "" if result == "connected" else result

    blocked = wait_for(refused, timeout=30, what="the policy to block np-denied", interval=0.5)
    assert blocked in ("ConnectionRefusedError", "TimeoutError"), blocked
    # Blocked for good (not a passing hiccup), while the allowed client still connects.
    assert connect("np-denied") in ("ConnectionRefusedError", "TimeoutError")
    assert connect("np-allowed") == "connected"
    # The kubelet's readiness probe (every second, one failure flips it) comes from the
    # node's own address, which kube-router always admits: the server stays Ready.
    assert ready(cluster, "np-server")

    kubectl(cluster.kubeconfig, "delete", "networkpolicy", "np-server-ingress",
            "--wait=true", "--timeout=30s")
    wait_for(lambda: connects("np-denied"), timeout=30,
             what="np-denied to connect again once the policy is gone", interval=0.5)
    assert connects("np-allowed")
    kubectl(cluster.kubeconfig, "delete", "pod", "np-server", "np-allowed", "np-denied",
            "--wait=false")


def test_a_service_without_endpoints_is_refused_at_once(
    node: tuple[RealCluster, HostState], images: dict[str, LocalImage]
) -> None:
    """kube-router's ACCEPT must not hide kube-proxy's REJECT: a pod's connection to a Service
    without endpoints is refused at once, as without kube-router (not a 3 s "No route to
    host", which is what a pod sees when kube-router's chain comes first)."""
    cluster, _ = node
    apply(
        cluster,
        pod("lonely", {"role": "lonely"}, images["wait"].ref, ["sleep", "3600"]),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "no-endpoints"},
         "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 5432}]}},
    )
    wait_ready(cluster, "lonely")
    cluster_ip = kubectl(cluster.kubeconfig, "get", "service", "no-endpoints", "-o",
                         "jsonpath={.spec.clusterIP}")
    # Bounded: kube-proxy writes the Service's REJECT on its next sync (5 s at most).
    wait_for(
        lambda: _connect(cluster, "lonely", cluster_ip, 5432) == "ConnectionRefusedError",
        timeout=20, what="a refused connection to a Service without endpoints", interval=0.5,
    )
    kubectl(cluster.kubeconfig, "delete", "pod", "lonely", "--wait=false")


def test_teardown_leaves_nothing_behind(
    node: tuple[RealCluster, HostState], images: dict[str, LocalImage]
) -> None:
    """Last in this module: stops the module's node itself (closing twice is harmless)."""
    cluster, before = node
    apply(cluster, {
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
