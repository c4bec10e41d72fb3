"""A network namespace the real node lives in, and forwards that let the host reach it.

Everything the real node owns on the network (its address, the pod bridge, the Service
range, kube-proxy's iptables rules) stays inside one namespace created here and deleted on
teardown, so the host's own network state never changes. Processes enter it with
`nsenter --net` (not `ip netns exec`, which remounts /sys and hides the cgroup tree the
kubelet and containerd need).

This kernel has no `dummy` link type: the node address sits on one end of a veth pair whose
two ends both live inside the namespace.
"""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from thumbnail_substrate.binaries import system_binary
from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.process import ManagedProcess, ensure_port_free, free_port, tcp_open

NETNS_DIR = Path("/run/netns")
NODE_IP = "10.10.0.1"
# The peer end of the veth carries no address; it only gives the default route a device so
# connections to ClusterIPs (rewritten by kube-proxy on the way out) find a route.
NODE_LINK, _PEER = "node0", "node0-peer"
# Set inside the namespace only: forwarding for pod traffic, bridged traffic through
# iptables so kube-proxy's rules see pod-to-Service packets.
NAMESPACED_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.ipv4.conf.all.route_localnet": "1",
}


def run_command(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise SubstrateError(f"{what} failed ({' '.join(argv)}): {proc.stderr.strip()}")
    return proc.stdout


def namespaces() -> set[str]:
    """Names of the network namespaces under /run/netns."""
    return {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()


@dataclass
class NetworkNamespace:
    name: str
    node_ip: str = NODE_IP

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def wrap(self, argv: list[str | Path]) -> list[str | Path]:
        """`argv` run inside the namespace (network only; mounts and PIDs stay the host's)."""
        return [_nsenter(), f"--net={self.path}", "--", *argv]

    def run(self, *argv: str, what: str = "command in the node namespace") -> str:
        return run_command([str(a) for a in self.wrap(list(argv))], what)

    def create(self, *, standalone: bool = True) -> None:
        """A `standalone` namespace carries its node address on a veth whose both ends live
        inside it (one node); otherwise `fabric.Fabric.attach` links it to the others."""
        if self.name in namespaces():
            raise SubstrateError(
                f"network namespace {self.name} already exists (a node left behind by a killed "
                f"run?): `thumbnail-substrate node-clean` removes it"
            )
        run_command(["ip", "netns", "add", self.name], "creating the network namespace")
        try:
            ip = ["ip", "-n", self.name]
            run_command([*ip, "link", "set", "lo", "up"], "loopback up")
            if standalone:
                link, peer = NODE_LINK, _PEER
                run_command([*ip, "link", "add", link, "type", "veth", "peer", "name", peer],
                            "veth pair")
                run_command([*ip, "addr", "add", f"{self.node_ip}/32", "dev", link],
                            "node address")
                run_command([*ip, "link", "set", link, "up"], "veth up")
                run_command([*ip, "link", "set", peer, "up"], "veth peer up")
                run_command([*ip, "route", "add", "default", "dev", link], "default route")
            for key, value in NAMESPACED_SYSCTLS.items():
                self.run("sysctl", "-q", "-w", f"{key}={value}", what=f"sysctl {key}")
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        if self.name in namespaces():
            run_command(["ip", "netns", "del", self.name], "deleting the network namespace")


class Forward(ManagedProcess):
    """127.0.0.1:`host_port` on the host -> `target_ip`:`target_port` inside the namespace.

    socat accepts on the host; each connection's child enters the namespace (nsenter) and
    connects there, so no address of the namespace is ever routable from the host."""

    def __init__(
        self, netns: NetworkNamespace, target_port: int, *, log: Path,
        host_port: int | None = None, target_ip: str | None = None,
    ) -> None:
        self.host_port = host_port or free_port()
        self.target = f"{target_ip or netns.node_ip}:{target_port}"
        inner = " ".join(str(a) for a in netns.wrap(["socat", "STDIO", f"TCP:{self.target}"]))
        super().__init__(
            f"forward-{self.host_port}",
            [
                _socat(),
                f"TCP-LISTEN:{self.host_port},bind=127.0.0.1,fork,reuseaddr",
                "EXEC:" + inner.replace(":", r"\:").replace(",", r"\,"),
            ],
            log=log,
        )

    def start(self) -> None:
        ensure_port_free(self.host_port, self.name)
        super().start()

    def listening(self) -> bool:
        return self.check_alive() and tcp_open(self.host_port)


def _socat() -> str:
    return str(system_binary("socat", "socat"))


def _nsenter() -> str:
    return str(system_binary("nsenter", "util-linux"))


def delete_quietly(name: str) -> None:
    with contextlib.suppress(SubstrateError):
        NetworkNamespace(name).delete()
