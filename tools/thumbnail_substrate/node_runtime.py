"""One node of the real cluster: containerd, kubelet, kube-proxy and (optionally) kube-router
inside the node's network namespace, each with the node's own directories, sockets, cgroup
root and pod CIDR, so several nodes share one machine without sharing state.

`node.RealCluster` creates one per node and drives them through their phases together (all
containerds, then all images, then all kubelets), so N nodes start in about the time of one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from thumbnail_substrate import node_config as cfg
from thumbnail_substrate import private_mounts
from thumbnail_substrate.binaries import go_tool, system_binary, tools_bindir
from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.images import LocalImage
from thumbnail_substrate.netns import NetworkNamespace
from thumbnail_substrate.node_layout import NodeSpec
from thumbnail_substrate.process import ManagedProcess, wait_until


class NodeRuntime:
    def __init__(
        self,
        spec: NodeSpec,
        *,
        workdir: Path,
        kubeconfig: Path,
        private_fixed_paths: bool,
        on_spawn: Callable[[ManagedProcess], None],
    ) -> None:
        """`kubeconfig` is the one processes inside the namespaces use; with
        `private_fixed_paths` the kubelet gets its own view of upstream's fixed host paths
        (`private_mounts`), which only matters once a second kubelet runs."""
        self.spec = spec
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.netns = NetworkNamespace(spec.netns, node_ip=spec.ip)
        self.paths = cfg.NodePaths(workdir / f"node{spec.suffix}")
        self.private_fixed_paths = private_fixed_paths
        self.processes: dict[str, ManagedProcess] = {}
        self._on_spawn = on_spawn

    @property
    def name(self) -> str:
        return self.spec.name

    def _file(self, stem: str, ext: str) -> Path:
        """The node's own config file in the cluster's work directory (kubelet-2.yaml)."""
        return self.workdir / f"{stem}{self.spec.suffix}{ext}"

    def _spawn(self, component: str, argv: list[str | Path]) -> ManagedProcess:
        name = component + self.spec.suffix
        proc = ManagedProcess(
            name, self.netns.wrap(argv), log=self.workdir / f"{name}.log", cwd=self.workdir
        )
        proc.start()
        self.processes[component] = proc
        self._on_spawn(proc)
        return proc

    def process(self, component: str) -> ManagedProcess | None:
        return self.processes.get(component)

    # -- configuration --

    def write_files(self, *, sandbox_image: str) -> None:
        p, spec = self.paths, self.spec
        for directory in (p.containerd_root, p.containerd_state, p.runc_root, p.cni_conf_dir,
                          p.kubelet_root, p.pod_logs, p.volumes, p.registry_hosts / "_default",
                          p.nri_socket.parent, p.containerd_opt):
            directory.mkdir(parents=True, exist_ok=True)
        cni_bin = tools_bindir() / "cni"
        if not (cni_bin / "bridge").exists():
            raise SubstrateError(f"CNI plugins not found in {cni_bin}: run `make tools`")
        self._file("containerd", ".toml").write_text(
            cfg.containerd_config(
                p, cni_bin_dir=cni_bin, sandbox_image=sandbox_image,
                runc=system_binary("runc", "runc"),
            )
        )
        (p.registry_hosts / "_default" / "hosts.toml").write_text(cfg.registry_hosts())
        (p.cni_conf_dir / "10-substrate.conflist").write_text(
            cfg.cni_conflist(ipam_dir=p.root / "cni" / "ipam", pod_cidr=spec.pod_cidr,
                             network=cfg.CNI_NETWORK + spec.suffix)
        )
        self._file("kubelet", ".yaml").write_text(
            cfg.to_yaml(
                cfg.kubelet_config(
                    p, node_ip=spec.ip, cgroup_root=spec.cgroup_root,
                    volume_plugin_dir=p.root / "volume-plugins", pod_cidr=spec.pod_cidr,
                )
            )
        )
        self._file("kube-proxy", ".yaml").write_text(
            cfg.to_yaml(
                cfg.kube_proxy_config(
                    kubeconfig=self.kubeconfig, node_ip=spec.ip, node_name=spec.name
                )
            )
        )

    # -- containerd and images --

    def ctr(self, *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(go_tool("ctr")), "--address", str(self.paths.containerd_socket),
             "--namespace", "k8s.io", *map(str, args)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def start_containerd(self) -> ManagedProcess:
        return self._spawn(
            "containerd", [go_tool("containerd"), "--config", self._file("containerd", ".toml")]
        )

    def wait_containerd(self) -> None:
        containerd = self.processes["containerd"]
        wait_until(
            lambda: containerd.check_alive() and self.ctr("version").returncode == 0,
            timeout=30, what=f"containerd of {self.name}", log=containerd.log,
        )

    def import_images(self, images: dict[str, LocalImage], say: Callable[[str], None]) -> None:
        for name, image in sorted(images.items()):
            proc = self.ctr("images", "import", image.archive, timeout=600)
            if proc.returncode != 0:
                raise SubstrateError(
                    f"importing image {name} ({image.archive}) into {self.name} failed: "
                    f"{proc.stderr.strip()}"
                )
            say(f"imported {image.ref}")

    def tag_image(self, ref: str, new_ref: str) -> None:
        proc = self.ctr("images", "tag", "--force", ref, new_ref)
        if proc.returncode != 0:
            raise SubstrateError(
                f"ctr images tag {ref} {new_ref} on {self.name} failed: {proc.stderr.strip()}"
            )

    # -- kubelet, kube-proxy, kube-router --

    def start_agents(self) -> None:
        self._spawn("kube-proxy", [go_tool("kube-proxy"), "--config",
                                   self._file("kube-proxy", ".yaml"), "--v=1"])
        kubelet: list[str | Path] = [
            go_tool("kubelet"),
            "--config", self._file("kubelet", ".yaml"),
            "--kubeconfig", self.kubeconfig,
            "--hostname-override", self.spec.name,
            "--node-ip", self.spec.ip,
            "--root-dir", self.paths.kubelet_root,
            "--cert-dir", self.paths.kubelet_certs,
            "--v=1",
        ]
        if self.private_fixed_paths:
            private_mounts.prepare(self.paths.private_mounts, self.paths.kubelet_root)
            kubelet = private_mounts.wrap(kubelet, self.paths.private_mounts)
        self._spawn("kubelet", kubelet)

    def filter_table(self) -> str:
        return self.netns.run("iptables-save", "-t", "filter", what="iptables-save")

    def start_kube_router(self) -> None:
        """kube-router's chain first gets kube-proxy's jump at its top (see
        `node_config.SERVICES_FIRST`), then kube-router starts and appends its own rules."""
        ipt = ("iptables", "-w", "5", "-t", "filter")
        self.netns.run(*ipt, "-N", cfg.KUBE_ROUTER_FORWARD, what="kube-router's chain")
        self.netns.run(*ipt, "-A", cfg.KUBE_ROUTER_FORWARD, *cfg.SERVICES_FIRST,
                       what="kube-proxy's jump in kube-router's chain")
        self._spawn(
            "kube-router",
            [go_tool("kube-router"),
             *cfg.kube_router_args(kubeconfig=self.kubeconfig, node_name=self.spec.name)],
        )

    def network_policies_programmed(self) -> bool:
        router = self.processes["kube-router"]
        return router.check_alive() and cfg.network_policies_programmed(self.filter_table())

    # -- teardown --

    def stop_kubelet(self) -> None:
        """First: a stopped kubelet recreates no pod the teardown removes."""
        if kubelet := self.processes.get("kubelet"):
            kubelet.stop()

    def remove_pods_and_stop_containerd(self) -> None:
        """Pods go while containerd is up (that also removes their namespaces and mounts)."""
        containerd = self.processes.get("containerd")
        if containerd is None or not containerd.running:
            return
        crictl = tools_bindir() / "crictl"
        if crictl.exists():
            endpoint = f"unix://{self.paths.containerd_socket}"
            subprocess.run(
                [str(crictl), "--runtime-endpoint", endpoint, "--timeout", "30s", "rmp", "-fa"],
                capture_output=True, timeout=120, check=False,
            )
        containerd.stop()
