"""Names, addresses and directories of the real cluster's nodes, as pure data.

One node keeps the names it always had: `real-node` in the namespace `thumbnail-node`,
address 10.10.0.1, pod CIDR 10.244.0.0/24, cgroup root /thumbnail-node. With N > 1, as in
Kind's default layout, the first node also hosts the control plane and node k (1-based) is
`real-node-k` in `thumbnail-node-k` at 10.10.0.k with pods in 10.244.(k-1).0/24; every node's
cgroups then sit under /thumbnail-node/<node name>, so one tree still holds the whole cluster
(what the teardown removes and the leak check looks at).
"""

from __future__ import annotations

from dataclasses import dataclass

NODE_NAME = "real-node"
# Node addresses 10.10.0.k and pod CIDRs 10.244.(k-1).0/24 leave room for this many nodes.
MAX_NODES = 200


@dataclass(frozen=True)
class NodeSpec:
    index: int
    """0-based; node 0 runs the control plane, CoreDNS and the host's forwards."""
    name: str
    netns: str
    ip: str
    pod_cidr: str
    cgroup_root: str
    """the kubelet's cgroupRoot"""
    suffix: str
    """"" for the first node, "-2", "-3", ... after: process, log, file and directory names"""


def layout(count: int, *, netns_base: str, cgroup_name: str) -> list[NodeSpec]:
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"nodes must be between 1 and {MAX_NODES}")
    specs = []
    for i in range(count):
        suffix = f"-{i + 1}" if i else ""
        name = NODE_NAME + suffix
        specs.append(NodeSpec(
            index=i, name=name, netns=netns_base + suffix, ip=f"10.10.0.{i + 1}",
            pod_cidr=f"10.244.{i}.0/24",
            cgroup_root=f"/{cgroup_name}" if count == 1 else f"/{cgroup_name}/{name}",
            suffix=suffix,
        ))
    return specs


def fabric_netns(netns_base: str) -> str:
    """The namespace of the switch that links the nodes (only with N > 1)."""
    return f"{netns_base}-fabric"
