"""Configuration files of the real node, as pure functions of its paths and addresses.

Each function returns the text (or object) one component reads; `node.RealNode` writes them.
The choices that are not upstream defaults are forced by this sandbox (see
shared/reference/real-node.md): cgroup v1 with the cgroupfs driver, no CAP_SYS_RESOURCE
(so no negative oom_score_adj), no registry (every pull goes to a dead loopback port).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from thumbnail_substrate.kube_objects import default_storage_class, pool_volume
from thumbnail_substrate.node_layout import NODE_NAME

POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
NODE_PORT_RANGE = "30000-32767"
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
BRIDGE = "cni0"
CNI_NETWORK = "substrate"
# Pulls go here and fail at once: nothing listens on port 1.
DEAD_REGISTRY = "http://127.0.0.1:1"


@dataclass(frozen=True)
class NodePaths:
    """Everything the node writes lives under `root` except what upstream fixes."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.root / "containerd" / "runc"

    @property
    def registry_hosts(self) -> Path:
        return self.root / "containerd" / "certs.d"

    @property
    def nri_socket(self) -> Path:
        return self.root / "containerd" / "nri" / "nri.sock"

    @property
    def containerd_opt(self) -> Path:
        return self.root / "containerd" / "opt"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_certs(self) -> Path:
        """--cert-dir: its default is /var/lib/kubelet/pki whatever --root-dir says."""
        return self.kubelet_root / "pki"

    @property
    def private_mounts(self) -> Path:
        """What the kubelet of a multi-node cluster sees at upstream's fixed paths."""
        return self.root / "private"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"


def containerd_config(
    paths: NodePaths, *, cni_bin_dir: Path, sandbox_image: str, runc: Path
) -> str:
    """containerd 2.x (config version 3): CRI with runc on cgroupfs, our own paths."""
    cri_runtime = '[plugins."io.containerd.cri.v1.runtime"'
    cri_images = '[plugins."io.containerd.cri.v1.images"'
    return f"""version = 3
root = "{paths.containerd_root}"
state = "{paths.containerd_state}"

[grpc]
  address = "{paths.containerd_socket}"

[ttrpc]
  address = "{paths.containerd_socket}.ttrpc"

# Both default to fixed host paths (/run/nri/nri.sock, /opt/containerd/{{bin,lib}}) that a
# second containerd would share, and that outlive the node.
[plugins."io.containerd.nri.v1.nri"]
  socket_path = "{paths.nri_socket}"
  plugin_path = "{paths.nri_socket.parent / "plugins"}"
  plugin_config_path = "{paths.nri_socket.parent / "conf.d"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{paths.containerd_opt}"

{cri_images}]
  snapshotter = "overlayfs"
  discard_unpacked_layers = false
{cri_images}.pinned_images]
  sandbox = "{sandbox_image}"
{cri_images}.registry]
  config_path = "{paths.registry_hosts}"

{cri_runtime}]
  # No CAP_SYS_RESOURCE here: a negative oom_score_adj cannot be set.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
{cri_runtime}.containerd]
  default_runtime_name = "runc"
{cri_runtime}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
{cri_runtime}.containerd.runtimes.runc.options]
  BinaryName = "{runc}"
  Root = "{paths.runc_root}"
  SystemdCgroup = false
{cri_runtime}.cni]
  bin_dirs = ["{cni_bin_dir}"]
  conf_dir = "{paths.cni_conf_dir}"
  max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def registry_hosts() -> str:
    """hosts.toml of `_default`: every registry resolves to a port nothing listens on."""
    return (
        f'server = "{DEAD_REGISTRY}"\n\n'
        f'[host."{DEAD_REGISTRY}"]\n  capabilities = ["pull", "resolve"]\n'
    )


def cni_conflist(
    *, ipam_dir: Path, pod_cidr: str = POD_CIDR, network: str = CNI_NETWORK
) -> str:
    """One bridge with host-local addresses, hairpin (a pod may reach itself through its own
    Service) and portmap for hostPort; no masquerade, since pod addresses are routed between
    the nodes and nothing leaves the namespaces. libcni caches results in the fixed
    /var/lib/cni/results/<network>-<sandbox id>-<interface> (containerd has no setting for
    it, and calls no CNI GC that would sweep it): the sandbox ids are containerd's random
    256-bit ids, so nodes never share an entry, and a network name per node tells whose each
    one is (go-cni's own loopback network is `cni-loopback` on every node)."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(ipam_dir),
                        "ranges": [[{"subnet": pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(
    paths: NodePaths, *, node_ip: str, cgroup_root: str, volume_plugin_dir: Path,
    pod_cidr: str = POD_CIDR,
) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # cgroup v1 is deprecated upstream but is what these machines have.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failSwapOn": False,
        # No CAP_SYS_RESOURCE: the kubelet's default -999 cannot be set.
        "oomScoreAdj": 0,
        "address": node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        # The API server reaches the kubelet (logs, exec, port-forward) without a client
        # certificate; the kubelet's port exists only inside the node's namespace.
        "authentication": {
            "anonymous": {"enabled": True},
            "webhook": {"enabled": False},
            "x509": {},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": CLUSTER_DOMAIN,
        # No upstream resolver exists inside the namespace: pods get cluster DNS only.
        "resolvConf": "",
        "volumePluginDir": str(volume_plugin_dir),
        "podCIDR": pod_cidr,
        "maxPods": 110,
        "serializeImagePulls": False,
        "podLogsDir": str(paths.pod_logs),
        # A shared disk must not make the node evict the system under test.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "makeIPTablesUtilChains": True,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "enforceNodeAllocatable": ["pods"],
        "localStorageCapacityIsolation": True,
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(
    *, kubeconfig: Path, node_ip: str, node_name: str = NODE_NAME
) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "bindAddress": node_ip,
        "clusterCIDR": CLUSTER_CIDR,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # 0: leave nf_conntrack_max alone (it is not ours to change).
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "nodePortAddresses": [f"{node_ip}/32", "127.0.0.0/8"],
        "iptables": {"syncPeriod": "5s", "minSyncPeriod": "0s", "masqueradeAll": False},
    }


def kube_router_args(*, kubeconfig: Path, node_name: str = NODE_NAME) -> list[str]:
    """kube-router's NetworkPolicy controller only (iptables + ipset in the node's namespace):
    kube-proxy stays the service proxy and the CNI bridge the pod network, so its router (BGP,
    routes, CNI config), service proxy (IPVS) and load-balancer allocator stay off."""
    return [
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--run-loadbalancer=false",
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node_name}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-node-port-range={NODE_PORT_RANGE}",
        "--enable-ipv4=true",
        "--enable-ipv6=false",
        # No listeners: the node's readiness is read from its iptables rules instead.
        "--health-port=0",
        "--metrics-port=0",
        "--v=1",
    ]


# Written by kube-router at the end of every full sync (iptables-restore of the filter table).
KUBE_ROUTER_SYNCED = "rule to explicitly ACCEPT traffic that comply to network policies"
KUBE_ROUTER_FORWARD = "KUBE-ROUTER-FORWARD"
# kube-router jumps to KUBE-ROUTER-FORWARD first in FORWARD and ends that chain with an ACCEPT
# of every packet a policy (or no policy) admits, so kube-proxy's own FORWARD jump to
# KUBE-SERVICES, whose REJECT refuses connections to a Service without endpoints, would never
# see pod traffic: such a connection would hang until ARP gives up (about 3 s, "No route to
# host") instead of being refused at once, as without kube-router (the same clash as Calico's
# explicit ACCEPT, projectcalico/calico#1055). The node creates kube-router's chain before
# kube-router starts, with kube-proxy's jump at its top; kube-router keeps rules it finds in
# its chains (each sync saves and restores the whole filter table) and appends its own.
SERVICES_FIRST = [
    "-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
    "substrate: kube-proxy's REJECT for Services without endpoints before kube-router's ACCEPT",
    "-j", "KUBE-SERVICES",
]


def has_chain(filter_table: str, chain: str) -> bool:
    """Whether `iptables-save -t filter` output declares `chain`."""
    return any(line.startswith(f":{chain} ") for line in filter_table.splitlines())


def network_policies_programmed(filter_table: str) -> bool:
    """True once `iptables-save -t filter` shows kube-router's FORWARD hook and its first full
    sync, next to kube-proxy's chains (both then program the same iptables backend), with the
    jump to kube-proxy's KUBE-SERVICES still first in kube-router's FORWARD chain."""
    lines = filter_table.splitlines()
    hooked = any(
        line.startswith("-A FORWARD ") and line.endswith(f"-j {KUBE_ROUTER_FORWARD}")
        for line in lines
    )
    router = [line for line in lines if line.startswith(f"-A {KUBE_ROUTER_FORWARD} ")]
    services_first = bool(router) and router[0].endswith("-j KUBE-SERVICES")
    synced = any(KUBE_ROUTER_SYNCED in line for line in router)
    return hooked and services_first and synced and has_chain(filter_table, "KUBE-SERVICES")


def corefile(*, node_ip: str, kubeconfig: Path) -> str:
    """Cluster DNS for cluster.local only: there is no upstream to forward to."""
    return f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {node_ip}
    errors
    ready 127.0.0.1:8181
    health 127.0.0.1:8080
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
    loadbalance
}}
"""


def dns_objects(node_ip: str) -> list[dict[str, Any]]:
    """kube-dns as the kubelet tells pods: a selector-less Service at CLUSTER_DNS whose
    endpoints are CoreDNS on the node address (CoreDNS runs as a node process, not a pod)."""
    ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {"clusterIP": CLUSTER_DNS, "ports": [{**p, "targetPort": 53} for p in ports]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {
                    **labels,
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "thumbnail-substrate",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [node_ip], "conditions": {"ready": True}}],
            "ports": ports,
        },
    ]


def local_storage_class() -> dict[str, Any]:
    """`local` volumes bound when a pod is scheduled; fsGroup applies to them (unlike
    hostPath), so non-root data stores can write their directories."""
    return default_storage_class("WaitForFirstConsumer")


def local_volume(
    index: int, path: Path, size: str = "10Gi", node_name: str = NODE_NAME
) -> dict[str, Any]:
    """A `local` volume on the node `node_name` (a directory of its work tree)."""
    on_node = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}
    return pool_volume(
        index, size, name="node-pv", local={"path": str(path)},
        nodeAffinity={"required": {"nodeSelectorTerms": [{"matchExpressions": [on_node]}]}},
    )


def to_yaml(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=False)
