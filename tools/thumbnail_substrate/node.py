"""A real single-node Kubernetes cluster that runs real containers, inside a network
namespace: the control plane of `kube.KubeCluster` plus containerd, runc, CNI, kubelet,
kube-proxy, CoreDNS and (unless `network_policies=False`) kube-router's firewall, which
enforces NetworkPolicies, with images imported from local archives (no registry).

    with RealCluster(images=local_images()) as cluster:
        cluster.kubeconfig            # host side: https://127.0.0.1:<forward>
        cluster.node_port_url(30000)  # http://127.0.0.1:<forward to 10.10.0.1:30000>

One real node per machine at a time (upstream fixes a few host paths). Teardown stops
everything, removes the pods' mounts, cgroups and the namespace and restores the global
sysctls the kubelet changed; `HostState` proves it. A run killed before its teardown is
cleaned by the next start (or `thumbnail-substrate node-clean`) from its state file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO, Any, Self

from thumbnail_substrate import node_config as cfg
from thumbnail_substrate.binaries import go_tool, system_binary, tools_bindir
from thumbnail_substrate.component import Component
from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.host_state import (
    CGROUP_ROOT,
    HostState,
    mounts,
    processes_mentioning,
    remove_cgroup_tree,
)
from thumbnail_substrate.images import LocalImage
from thumbnail_substrate.kube import KubeCluster
from thumbnail_substrate.netns import Forward, NetworkNamespace, delete_quietly, namespaces
from thumbnail_substrate.process import ManagedProcess, tcp_open, wait_until

NETNS_NAME = "thumbnail-node"
CGROUP_NAME = "thumbnail-node"
STATE_DIR = Path("/run/thumbnail-substrate")
VOLUME_COUNT = 24
LOCK_TIMEOUT = 1800.0


def _log(message: str) -> None:
    print(f"    [node] {message}", flush=True)


class RealCluster(Component):
    """Control plane + one real node in the network namespace `netns_name`."""

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
    ) -> None:
        """`images` are imported into containerd (their `pause` entry is the sandbox image);
        each of `node_ports` gets a host forward on the same port when it is free, else on
        a free one (`node_port_url` says which). With `network_policies` (the default)
        kube-router's network policy controller runs on the node, so NetworkPolicies are
        enforced as on a real cluster; `start()` returns once its chains are programmed."""
        super().__init__(workdir)
        if "pause" not in images:
            raise SubstrateError("the real node needs a pause image: run `make images`")
        self.images = images
        self.netns = NetworkNamespace(netns_name)
        self.paths = cfg.NodePaths(self.workdir / "node")
        self.control_plane = KubeCluster(
            self.workdir / "control-plane", nodes=0, pv_pool=0, netns=self.netns
        )
        self.kubeconfig = self.control_plane.kubeconfig
        self.node_port_list = node_ports
        self.volume_count = volumes
        self.quiet = quiet
        self.network_policies = network_policies
        self.forwards: dict[int, Forward] = {}
        self.cgroup_name = CGROUP_NAME
        self.before: HostState | None = None
        self.timings: dict[str, float] = {}
        self._state_file = STATE_DIR / f"{netns_name}.json"
        self._lock_file: IO[str] | None = None

    # -- public helpers --

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
        """Make an imported image available under another reference too (what a push of
        a new tag to a registry would do)."""
        proc = self._ctr("images", "tag", "--force", ref, new_ref)
        if proc.returncode != 0:
            raise SubstrateError(f"ctr images tag {ref} {new_ref} failed: {proc.stderr.strip()}")

    # -- lifecycle --

    def _say(self, message: str) -> None:
        if not self.quiet:
            _log(message)

    def _step(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 2)
        self._say(f"{name}: {self.timings[name]:.1f}s")

    def _lock(self, timeout: float) -> None:
        """One real node per machine (upstream fixes a few host paths): wait for the other."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(STATE_DIR / "node.lock", "w")  # noqa: SIM115 (held until stop)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SubstrateError(
                        f"another real node held {STATE_DIR / 'node.lock'} for {timeout:.0f}s"
                    ) from None
                self._say("waiting for another real node on this machine to stop ...")
                time.sleep(5)

    def start(self) -> Self:
        if os.geteuid() != 0:
            raise SubstrateError("the real node needs root (containerd, kubelet, namespaces)")
        self._lock(timeout=LOCK_TIMEOUT)
        clean_stale(self._state_file)
        started = time.monotonic()
        self.before = HostState.capture(self.cgroup_name)
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(
            json.dumps(
                {
                    "workdir": str(self.workdir),
                    "netns": self.netns.name,
                    "cgroup": self.cgroup_name,
                    "sysctls": self.before.sysctls,
                    "existing_paths": sorted(str(p) for p in self.before.existing_paths),
                }
            )
        )
        self.netns.create()
        self._write_files()
        t = time.monotonic()
        self.control_plane.start()
        self.processes.extend(self.control_plane.processes)
        self._step("control plane", t)

        t = time.monotonic()
        containerd = self._spawn(
            "containerd", [go_tool("containerd"), "--config", self.workdir / "containerd.toml"]
        )
        wait_until(
            lambda: containerd.check_alive() and self._ctr("version").returncode == 0,
            timeout=30, what="containerd", log=containerd.log,
        )
        self._step("containerd", t)
        t = time.monotonic()
        self._import_images()
        self._step(f"{len(self.images)} images imported", t)

        t = time.monotonic()
        self._spawn("coredns", [go_tool("coredns"), "-conf", self.workdir / "Corefile"])
        self._spawn("kube-proxy", [go_tool("kube-proxy"), "--config",
                                   self.workdir / "kube-proxy.yaml", "--v=1"])
        kubelet = self._spawn(
            "kubelet",
            [
                go_tool("kubelet"),
                "--config", self.workdir / "kubelet.yaml",
                "--kubeconfig", self.control_plane.internal_kubeconfig,
                "--hostname-override", cfg.NODE_NAME,
                "--node-ip", self.netns.node_ip,
                "--root-dir", self.paths.kubelet_root,
                "--v=1",
            ],
        )
        self._bootstrap_objects()
        router: ManagedProcess | None = None
        router_started = 0.0
        if self.network_policies:
            # kube-router reads its node's address from the Node object at start: wait for
            # the kubelet to register it (and kube-proxy for its chains), then let the node
            # become Ready while kube-router programs its chains.
            wait_until(
                lambda: kubelet.check_alive() and self._node_registered()
                and cfg.has_chain(self._filter_table(), "KUBE-SERVICES"),
                timeout=60, what="real node registered and kube-proxy's chains",
                log=kubelet.log,
            )
            router_started = time.monotonic()
            ipt = ("iptables", "-w", "5", "-t", "filter")
            self.netns.run(*ipt, "-N", cfg.KUBE_ROUTER_FORWARD, what="kube-router's chain")
            self.netns.run(*ipt, "-A", cfg.KUBE_ROUTER_FORWARD, *cfg.SERVICES_FIRST,
                           what="kube-proxy's jump in kube-router's chain")
            router = self._spawn(
                "kube-router",
                [go_tool("kube-router"),
                 *cfg.kube_router_args(kubeconfig=self.control_plane.internal_kubeconfig)],
            )
        wait_until(
            lambda: kubelet.check_alive() and self._node_ready(),
            timeout=90, what="real node Ready", log=kubelet.log,
        )
        self._step("node Ready", t)
        if router is not None:
            started_router = router
            wait_until(
                lambda: started_router.check_alive() and self._network_policies_programmed(),
                timeout=60, what="kube-router's NetworkPolicy chains", log=router.log,
            )
            self._step("kube-router", router_started)
        for port in self.node_port_list:
            forward = Forward(
                self.netns, port, host_port=port if _free(port) else None,
                log=self.workdir / f"forward-{port}.log",
            )
            forward.start()
            self.processes.append(forward)
            self.forwards[port] = forward
        wait_until(
            lambda: all(f.listening() for f in self.forwards.values()),
            timeout=10, what="NodePort forwards",
        )
        self.startup_seconds = time.monotonic() - started
        self._say(f"ready in {self.startup_seconds:.1f}s; KUBECONFIG={self.kubeconfig}")
        return self

    def _spawn(self, name: str, argv: list[str | Path]) -> ManagedProcess:
        return super()._spawn(name, self.netns.wrap(argv))

    def _write_files(self) -> None:
        p = self.paths
        for directory in (p.containerd_root, p.containerd_state, p.runc_root, p.cni_conf_dir,
                          p.kubelet_root, p.pod_logs, p.volumes, p.registry_hosts / "_default"):
            directory.mkdir(parents=True, exist_ok=True)
        if self.network_policies:
            system_binary("ipset", "ipset")  # kube-router's firewall runs it
            go_tool("kube-router")
        cni_bin = tools_bindir() / "cni"
        if not (cni_bin / "bridge").exists():
            raise SubstrateError(f"CNI plugins not found in {cni_bin}: run `make tools`")
        (self.workdir / "containerd.toml").write_text(
            cfg.containerd_config(
                p, cni_bin_dir=cni_bin, sandbox_image=self.images["pause"].ref,
                runc=system_binary("runc", "runc"),
            )
        )
        (p.registry_hosts / "_default" / "hosts.toml").write_text(cfg.registry_hosts())
        (p.cni_conf_dir / "10-substrate.conflist").write_text(
            cfg.cni_conflist(ipam_dir=self.workdir / "node" / "cni" / "ipam")
        )
        (self.workdir / "kubelet.yaml").write_text(
            cfg.to_yaml(
                cfg.kubelet_config(
                    p, node_ip=self.netns.node_ip, cgroup_root=f"/{self.cgroup_name}",
                    volume_plugin_dir=self.workdir / "node" / "volume-plugins",
                )
            )
        )
        (self.workdir / "kube-proxy.yaml").write_text(
            cfg.to_yaml(
                cfg.kube_proxy_config(
                    kubeconfig=self.control_plane.internal_kubeconfig, node_ip=self.netns.node_ip
                )
            )
        )
        (self.workdir / "Corefile").write_text(
            cfg.corefile(
                node_ip=self.netns.node_ip, kubeconfig=self.control_plane.internal_kubeconfig
            )
        )
        _make_cgroup_root(self.cgroup_name)

    def _ctr(self, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(go_tool("ctr")), "--address", str(self.paths.containerd_socket),
             "--namespace", "k8s.io", *map(str, args)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def _import_images(self) -> None:
        for name, image in sorted(self.images.items()):
            proc = self._ctr("images", "import", image.archive, timeout=600)
            if proc.returncode != 0:
                raise SubstrateError(
                    f"importing image {name} ({image.archive}) failed: {proc.stderr.strip()}"
                )
            self._say(f"imported {image.ref}")

    def _bootstrap_objects(self) -> None:
        def api_up() -> bool:
            self.control_plane.request("GET", "/api/v1/namespaces/kube-system")
            return True

        wait_until(api_up, timeout=30, what="kube-system namespace")
        for obj in cfg.dns_objects(self.netns.node_ip):
            group = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
            plural = "services" if obj["kind"] == "Service" else "endpointslices"
            self.control_plane.create(f"{group}/namespaces/kube-system/{plural}", obj)
        self.control_plane.create(
            "/apis/storage.k8s.io/v1/storageclasses", cfg.local_storage_class()
        )
        for i in range(self.volume_count):
            path = self.paths.volumes / f"{i:03d}"
            path.mkdir(parents=True, exist_ok=True)
            self.control_plane.create("/api/v1/persistentvolumes", cfg.local_volume(i, path))

    def _node_registered(self) -> bool:
        self.control_plane.request("GET", f"/api/v1/nodes/{cfg.NODE_NAME}")
        return True

    def _filter_table(self) -> str:
        return self.netns.run("iptables-save", "-t", "filter", what="iptables-save")

    def _network_policies_programmed(self) -> bool:
        return cfg.network_policies_programmed(self._filter_table())

    def _node_ready(self) -> bool:
        for proc in self.processes:
            proc.check_alive()
        node = self.control_plane.request("GET", f"/api/v1/nodes/{cfg.NODE_NAME}")
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in node.get("status", {}).get("conditions", [])
        )

    def stop(self) -> None:
        """Stop in the order that leaves nothing: kubelet (so it recreates nothing), the
        pods while containerd is up, containerd, stray shims, mounts, the rest, then the
        namespace and the host state."""
        started = time.monotonic()
        by_name = {p.name: p for p in self.processes}
        if kubelet := by_name.get("kubelet"):
            kubelet.stop()
        containerd = by_name.get("containerd")
        if containerd and containerd.running:
            self._remove_pods()
            containerd.stop()
        for proc in reversed(self.processes):
            proc.stop()
        self.processes = []
        self.forwards = {}
        teardown_leftovers(self.workdir, self.netns.name, self.cgroup_name)
        if self.before is not None:
            self.before.restore(self.cgroup_name)
        self._state_file.unlink(missing_ok=True)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None
        self.teardown_seconds = time.monotonic() - started

    def _remove_pods(self) -> None:
        crictl = tools_bindir() / "crictl"
        if not crictl.exists():
            return
        endpoint = f"unix://{self.paths.containerd_socket}"
        subprocess.run(
            [str(crictl), "--runtime-endpoint", endpoint, "--timeout", "30s", "rmp", "-fa"],
            capture_output=True, timeout=120, check=False,
        )


def _free(port: int) -> bool:
    return not tcp_open(port)


def _make_cgroup_root(name: str) -> None:
    """The kubelet's cgroupRoot must exist in every v1 hierarchy; cpuset needs its cpus and
    mems filled in before anything can join."""
    for hierarchy in CGROUP_ROOT.iterdir():
        if hierarchy.is_symlink() or hierarchy.name == "unified" or not hierarchy.is_dir():
            continue
        target = hierarchy / name
        target.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (target / knob).write_text((hierarchy / knob).read_text())


def teardown_leftovers(workdir: Path, netns_name: str, cgroup_name: str) -> None:
    """What survives stopping the node's processes: shims and containers (reparented to
    init), mounts under the work directory, CNI's per-pod namespaces, our cgroups."""
    socket_dir = str(workdir / "node" / "containerd")
    for _ in range(3):
        pids = processes_mentioning(socket_dir)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        if not pids:
            break
        time.sleep(0.5)
    _kill_cgroup_tasks(cgroup_name)
    for mount_point in sorted(
        (m for m in mounts() if m.startswith(str(workdir)) or m.startswith("/run/netns/cni-")),
        key=len, reverse=True,
    ):
        subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)
    for cni_ns in [n for n in namespaces() if n.startswith("cni-")]:
        delete_quietly(cni_ns)
    delete_quietly(netns_name)
    remove_cgroup_tree(cgroup_name)


def _kill_cgroup_tasks(cgroup_name: str) -> None:
    """Container processes left in the node's cgroups (their shim gone) get SIGKILL."""
    top = CGROUP_ROOT / "pids" / cgroup_name
    if not top.is_dir():
        return
    for _ in range(5):
        pids = {
            int(line)
            for procs in top.rglob("cgroup.procs")
            for line in procs.read_text().split()
        }
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.5)


def clean_stale(state_file: Path) -> bool:
    """Tear down what a killed run left (from its state file); True if there was one."""
    if not state_file.exists():
        return False
    state = json.loads(state_file.read_text())
    _log(f"cleaning up a node left behind by an earlier run ({state['workdir']})")
    teardown_leftovers(Path(state["workdir"]), state["netns"], state["cgroup"])
    before = HostState(
        sysctls=state["sysctls"],
        existing_paths={Path(p) for p in state["existing_paths"]},
        netns=set(), mounts=[], iptables="",
    )
    before.restore(state["cgroup"])
    shutil.rmtree(state["workdir"], ignore_errors=True)
    state_file.unlink(missing_ok=True)
    return True


__all__ = ["NETNS_NAME", "RealCluster", "clean_stale"]
