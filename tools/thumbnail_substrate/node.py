"""A real Kubernetes cluster that runs real containers, inside network namespaces: the control
plane of `kube.KubeCluster` plus, on each of its nodes, containerd, runc, CNI, kubelet,
kube-proxy and (unless `network_policies=False`) kube-router's firewall, which enforces
NetworkPolicies; CoreDNS on the first node; images imported from local archives (no registry).

    with RealCluster(images=local_images()) as cluster:
        cluster.kubeconfig            # host side: https://127.0.0.1:<forward>
        cluster.node_port_url(30000)  # http://127.0.0.1:<forward to 10.10.0.1:30000>

One node by default; `nodes=N` gives Kind's default layout (the first node also runs the
control plane, every node takes pods), each node in its own namespace, linked by `Fabric`,
so `kubectl drain` and topology spread are real (`node_layout` has the names and addresses).

One real cluster per machine at a time (upstream fixes a few host paths). Teardown stops
everything, removes the pods' mounts, cgroups and the namespaces and restores the global
sysctls the kubelet changed; `HostState` proves it. A run killed before its teardown is
cleaned by the next start (or `thumbnail-substrate node-clean`) from its state file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Self

from thumbnail_substrate import node_config as cfg
from thumbnail_substrate.binaries import go_tool, system_binary
from thumbnail_substrate.component import Component
from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.fabric import Fabric
from thumbnail_substrate.host_state import CGROUP_ROOT, HostState
from thumbnail_substrate.images import LocalImage
from thumbnail_substrate.kube import KubeCluster
from thumbnail_substrate.netns import Forward, NetworkNamespace
from thumbnail_substrate.node_cleanup import (
    clean_stale,
    make_cgroup_root,
    teardown_leftovers,
    write_state,
)
from thumbnail_substrate.node_layout import fabric_netns, layout
from thumbnail_substrate.node_runtime import NodeRuntime
from thumbnail_substrate.process import tcp_open, wait_until

NETNS_NAME = "thumbnail-node"
CGROUP_NAME = "thumbnail-node"
STATE_DIR = Path("/run/thumbnail-substrate")
VOLUME_COUNT = 24
LOCK_TIMEOUT = 1800.0
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"


def _log(message: str) -> None:
    print(f"    [node] {message}", flush=True)


class RealCluster(Component):
    """Control plane + `nodes` real nodes, the first in the network namespace `netns_name`."""

    name = "node"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        images: dict[str, LocalImage],
        node_ports: tuple[int, ...] = (30000, 30001),
        volumes: int = VOLUME_COUNT,
        netns_name: str = NETNS_NAME,
        quiet: bool = False,
        network_policies: bool = True,
        nodes: int = 1,
    ) -> None:
        """`images` are imported into every node's containerd (their `pause` entry is the
        sandbox image); each of `node_ports` gets a host forward on the same port when it is
        free, else on a free one (`node_port_url` says which). With `network_policies` (the
        default) kube-router's network policy controller runs on every node, so
        NetworkPolicies are enforced as on a real cluster; `start()` returns once its chains
        are programmed. The `volumes` local PersistentVolumes are spread over the nodes
        round-robin, each pinned to its node."""
        super().__init__(workdir)
        if "pause" not in images:
            raise SubstrateError("the real node needs a pause image: run `make images`")
        self.images = images
        self.cgroup_name = CGROUP_NAME
        specs = layout(nodes, netns_base=netns_name, cgroup_name=self.cgroup_name)
        self.fabric = Fabric(fabric_netns(netns_name)) if nodes > 1 else None
        # The control plane shares the first node's namespace, as on a Kind control-plane
        # node; the other nodes reach it over the fabric.
        first = NetworkNamespace(specs[0].netns, node_ip=specs[0].ip)
        self.control_plane = KubeCluster(
            self.workdir / "control-plane", nodes=0, pv_pool=0, netns=first
        )
        self.kubeconfig = self.control_plane.kubeconfig
        self.nodes = [
            NodeRuntime(
                spec, workdir=self.workdir, kubeconfig=self.control_plane.internal_kubeconfig,
                private_fixed_paths=nodes > 1, on_spawn=self.processes.append,
            )
            for spec in specs
        ]
        self.netns = self.nodes[0].netns
        self.paths = self.nodes[0].paths
        self.node_port_list = node_ports
        self.volume_count = volumes
        self.quiet = quiet
        self.network_policies = network_policies
        self.forwards: dict[int, Forward] = {}
        self.before: HostState | None = None
        self.timings: dict[str, float] = {}
        self._state_file = STATE_DIR / f"{netns_name}.json"
        self._lock_file: IO[str] | None = None

    # -- public helpers --

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]

    @property
    def namespaces(self) -> list[str]:
        """Every network namespace the cluster owns (the nodes', then the fabric's)."""
        return [n.netns.name for n in self.nodes] + ([self.fabric.name] if self.fabric else [])

    def node_port_url(self, node_port: int) -> str:
        return f"http://127.0.0.1:{self.forwards[node_port].host_port}"

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.control_plane.request(method, path, body)

    def kill_container(self, pod_uid: str, container_id: str) -> int:
        """SIGKILL every process of one container at once, as a crash or the OOM killer
        would (no SIGTERM, no grace period); returns how many were killed."""
        cid = container_id.split("://")[-1]
        top = CGROUP_ROOT / "pids" / self.cgroup_name
        pattern = f"**/pod{pod_uid}/{cid}/cgroup.procs"
        killed = 0
        for procs in top.glob(pattern):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
                    killed += 1
        if not killed:
            raise SubstrateError(f"no processes of container {cid} in pod {pod_uid}")
        return killed

    def tag_image(self, ref: str, new_ref: str) -> None:
        """Make an imported image available under another reference too, on every node
        (what a push of a new tag to a registry would do)."""
        for node in self.nodes:
            node.tag_image(ref, new_ref)

    # -- lifecycle --

    def _say(self, message: str, node: NodeRuntime | None = None) -> None:
        if not self.quiet:
            _log(f"[{node.name}] {message}" if node and len(self.nodes) > 1 else message)

    def _step(self, name: str, started: float, node: NodeRuntime | None = None) -> None:
        key = f"{node.name} {name}" if node and len(self.nodes) > 1 else name
        self.timings[key] = round(time.monotonic() - started, 2)
        self._say(f"{name}: {self.timings[key]:.1f}s", node)

    def _lock(self, timeout: float) -> None:
        self._lock_file = acquire_lock(timeout, self._say)

    def start(self) -> Self:
        if os.geteuid() != 0:
            raise SubstrateError("the real node needs root (containerd, kubelet, namespaces)")
        self._lock(timeout=LOCK_TIMEOUT)
        clean_stale(self._state_file)
        started = time.monotonic()
        self.before = HostState.capture(self.cgroup_name)
        write_state(self._state_file, self.workdir, self.namespaces, self.cgroup_name,
                    self.before)
        self._create_network()
        self._write_files()
        t = time.monotonic()
        self.control_plane.start()
        self.processes.extend(self.control_plane.processes)
        self._step("control plane", t)

        self._start_runtimes()
        t = time.monotonic()
        # CoreDNS is a process on the first node (kube-dns's endpoint is its address).
        self._spawn("coredns", self.nodes[0].netns.wrap(
            [go_tool("coredns"), "-conf", self.workdir / "Corefile"]))
        for node in self.nodes:
            node.start_agents()
        self._bootstrap_objects()
        # The node's pod CIDR goes on its Node as the control plane's IPAM would put it
        # there; kube-router reads its node's address from the Node object at start: wait
        # for every kubelet to register (and kube-proxy for its chains).
        for node in self.nodes:
            self._wait_registered(node)
            self._label_node(node)
        router_started = time.monotonic()
        if self.network_policies:
            # The node becomes Ready while kube-router programs its chains.
            for node in self.nodes:
                node.start_kube_router()
        for node in self.nodes:
            self._wait_ready(node)
            self._step("node Ready", t, node)
        if self.network_policies:
            for node in self.nodes:
                wait_until(
                    node.network_policies_programmed, timeout=60,
                    what=f"kube-router's NetworkPolicy chains on {node.name}",
                    log=node.processes["kube-router"].log,
                )
                self._step("kube-router", router_started, node)
        self._start_forwards()
        self.startup_seconds = time.monotonic() - started
        self._say(f"ready in {self.startup_seconds:.1f}s; KUBECONFIG={self.kubeconfig}")
        return self

    def _create_network(self) -> None:
        if self.fabric is None:
            self.nodes[0].netns.create()
            return
        self.fabric.create()
        for node in self.nodes:
            node.netns.create(standalone=False)
            self.fabric.attach(node.netns, port=f"veth{node.spec.index + 1}")
        # Every node routes each other node's pod CIDR to that node's address.
        for node in self.nodes:
            for other in self.nodes:
                if other is not node:
                    Fabric.route(node.netns, other.spec.pod_cidr, via=other.spec.ip)

    def _write_files(self) -> None:
        if self.network_policies:
            system_binary("ipset", "ipset")  # kube-router's firewall runs it
            go_tool("kube-router")
        for node in self.nodes:
            node.write_files(sandbox_image=self.images["pause"].ref)
            make_cgroup_root(node.spec.cgroup_root)
        first = self.nodes[0]
        (self.workdir / "Corefile").write_text(
            cfg.corefile(node_ip=first.spec.ip, kubeconfig=self.control_plane.internal_kubeconfig)
        )

    def _start_runtimes(self) -> None:
        """All containerds at once, then the images into each (in parallel: mostly disk)."""
        t = time.monotonic()
        for node in self.nodes:
            node.start_containerd()
        for node in self.nodes:
            node.wait_containerd()
            self._step("containerd", t, node)

        def import_into(node: NodeRuntime) -> None:
            t = time.monotonic()
            node.import_images(self.images, lambda message: self._say(message, node))
            self._step(f"{len(self.images)} images imported", t, node)

        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            for future in [pool.submit(import_into, node) for node in self.nodes]:
                future.result()

    def _start_forwards(self) -> None:
        """The host reaches NodePorts on the first node (kube-proxy there forwards to pods on
        any node), as a load balancer in front of a Kind cluster would."""
        for port in self.node_port_list:
            forward = Forward(
                self.nodes[0].netns, port, host_port=port if _free(port) else None,
                log=self.workdir / f"forward-{port}.log",
            )
            forward.start()
            self.processes.append(forward)
            self.forwards[port] = forward
        wait_until(
            lambda: all(f.listening() for f in self.forwards.values()),
            timeout=10, what="NodePort forwards",
        )

    def _bootstrap_objects(self) -> None:
        def api_up() -> bool:
            self.control_plane.request("GET", "/api/v1/namespaces/kube-system")
            return True

        wait_until(api_up, timeout=30, what="kube-system namespace")
        for obj in cfg.dns_objects(self.nodes[0].spec.ip):
            group = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
            plural = "services" if obj["kind"] == "Service" else "endpointslices"
            self.control_plane.create(f"{group}/namespaces/kube-system/{plural}", obj)
        self.control_plane.create(
            "/apis/storage.k8s.io/v1/storageclasses", cfg.local_storage_class()
        )
        # Round-robin, so a StatefulSet can put each replica on any node.
        for i in range(self.volume_count):
            node = self.nodes[i % len(self.nodes)]
            path = node.paths.volumes / f"{i:03d}"
            path.mkdir(parents=True, exist_ok=True)
            self.control_plane.create("/api/v1/persistentvolumes",
                                      cfg.local_volume(i, path, node_name=node.name))

    def _node(self, node: NodeRuntime) -> dict[str, Any]:
        obj: dict[str, Any] = self.control_plane.request("GET", f"/api/v1/nodes/{node.name}")
        return obj

    def _wait_registered(self, node: NodeRuntime) -> None:
        kubelet = node.processes["kubelet"]

        def registered() -> bool:
            self._node(node)  # 404 until the kubelet registers
            return kubelet.check_alive() and cfg.has_chain(node.filter_table(), "KUBE-SERVICES")

        wait_until(registered, timeout=60, what=f"{node.name} registered and kube-proxy's "
                   "chains", log=kubelet.log)

    def _wait_ready(self, node: NodeRuntime) -> None:
        kubelet = node.processes["kubelet"]

        def ready() -> bool:
            for proc in self.processes:
                proc.check_alive()
            conditions = self._node(node).get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_until(ready, timeout=90, what=f"{node.name} Ready", log=kubelet.log)

    def _label_node(self, node: NodeRuntime) -> None:
        """What the control plane's node IPAM and kubeadm would set: the pod CIDR the node's
        CNI already uses (spec.podCIDR can be set once), and the control-plane role on the
        first node (no taint: every node takes pods, see `node_layout`)."""
        labels = {CONTROL_PLANE_LABEL: ""} if node.spec.index == 0 else {}
        body = {"metadata": {"labels": labels},
                "spec": {"podCIDR": node.spec.pod_cidr, "podCIDRs": [node.spec.pod_cidr]}}
        self.control_plane.merge_patch(f"/api/v1/nodes/{node.name}", body)

    def stop(self) -> None:
        """Stop in the order that leaves nothing: the kubelets (so they recreate nothing),
        each node's pods while its containerd is up, the containerds, stray shims, mounts,
        the rest, then the namespaces and the host state."""
        if self._lock_file is None:
            # Never started (or stopped already): what runs under these names is another
            # cluster's, which holds the lock.
            return
        started = time.monotonic()
        for node in self.nodes:
            node.stop_kubelet()
        for node in self.nodes:
            node.remove_pods_and_stop_containerd()
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        self.forwards = {}
        teardown_leftovers(self.workdir, self.namespaces, self.cgroup_name)
        if self.before is not None:
            self.before.restore(self.cgroup_name)
        self._state_file.unlink(missing_ok=True)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None
        self.teardown_seconds = time.monotonic() - started


def acquire_lock(timeout: float, say: Callable[[str], None] = _log) -> IO[str]:
    """One real cluster per machine (upstream fixes a few host paths): wait for the other.
    The lock is held until the returned file is closed (or the process dies)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    lock_file = open(STATE_DIR / "node.lock", "w")  # noqa: SIM115 (held until closed)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock_file
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock_file.close()
                raise SubstrateError(
                    f"another real node held {STATE_DIR / 'node.lock'} for {timeout:.0f}s"
                ) from None
            say("waiting for another real node on this machine to stop ...")
            time.sleep(5)


def clean_left_behind(netns_name: str = NETNS_NAME, timeout: float = LOCK_TIMEOUT) -> bool:
    """`clean_stale` under the lock: a running cluster's state file is not left behind."""
    with acquire_lock(timeout):
        return clean_stale(STATE_DIR / f"{netns_name}.json")


def _free(port: int) -> bool:
    return not tcp_open(port)


__all__ = ["CGROUP_NAME", "NETNS_NAME", "RealCluster", "clean_left_behind", "clean_stale"]
