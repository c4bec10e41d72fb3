"""The switch between the nodes of a multi-node real cluster: a bridge in a namespace of its
own, one veth per node (`node0` inside the node's namespace, its node address on it).

The bridge lives in a namespace that runs nothing: in a node's namespace, frames between two
other nodes would cross that node's iptables (bridge-nf-call-iptables is on there for the CNI
bridge, and kube-proxy and kube-router program FORWARD), so one node's firewall would filter
traffic between the others. Pod CIDRs are routed to their node's address from every node, as
a flat L3 pod network (Kind's kindnet, kube-router's routes) does.
"""

from __future__ import annotations

from thumbnail_substrate.netns import NODE_LINK, NetworkNamespace, run_command

BRIDGE = "fabric0"
PREFIX_LENGTH = 24  # the node addresses 10.10.0.k share one subnet on the bridge


class Fabric:
    def __init__(self, name: str) -> None:
        self.netns = NetworkNamespace(name, node_ip="")

    @property
    def name(self) -> str:
        return self.netns.name

    def create(self) -> None:
        self.netns.create(standalone=False)
        try:
            ip = ["ip", "-n", self.name]
            run_command([*ip, "link", "add", BRIDGE, "type", "bridge"], "the nodes' bridge")
            run_command([*ip, "link", "set", BRIDGE, "up"], "the nodes' bridge up")
            # A plain switch: nothing here is ours to filter.
            self.netns.run("sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0",
                           what="no iptables on the nodes' bridge")
        except BaseException:
            self.netns.delete()
            raise

    def attach(self, node: NetworkNamespace, port: str) -> None:
        """Link `node` (created with `standalone=False`) to the bridge through the veth
        `port`/node0, with its node address and a default route on node0 (connections to
        ClusterIPs need a route before kube-proxy rewrites them)."""
        ip = ["ip", "-n", self.name]
        run_command([*ip, "link", "add", port, "type", "veth", "peer", "name", NODE_LINK,
                     "netns", node.name], f"veth to {node.name}")
        run_command([*ip, "link", "set", port, "master", BRIDGE], f"{port} on the bridge")
        run_command([*ip, "link", "set", port, "up"], f"{port} up")
        inside = ["ip", "-n", node.name]
        run_command([*inside, "addr", "add", f"{node.node_ip}/{PREFIX_LENGTH}", "dev", NODE_LINK],
                    f"node address of {node.name}")
        run_command([*inside, "link", "set", NODE_LINK, "up"], f"{NODE_LINK} up in {node.name}")
        run_command([*inside, "route", "add", "default", "dev", NODE_LINK],
                    f"default route in {node.name}")

    @staticmethod
    def route(node: NetworkNamespace, cidr: str, via: str) -> None:
        """Packets for `cidr` (another node's pods) leave `node` towards that node's address."""
        run_command(["ip", "-n", node.name, "route", "add", cidr, "via", via, "dev", NODE_LINK],
                    f"route to {cidr} in {node.name}")

    def delete(self) -> None:
        self.netns.delete()
