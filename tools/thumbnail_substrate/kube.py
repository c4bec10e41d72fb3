"""A real Kubernetes control plane with kwok-simulated nodes, as in envtest plus kwok.

etcd -> kube-apiserver -> kube-controller-manager + kube-scheduler -> kwok. The apiserver
authenticates an admin token (group system:masters) and authorizes with RBAC, so tests can
impersonate a ServiceAccount and prove a Role is sufficient.

The defaults (two nodes of 110 pods, 40 volumes, the components' default client rates, no
audit log) are what the tests need; benchmarks size the cluster up through the keyword
arguments of `KubeCluster` and can ask for an audit log of every write.
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import yaml

from thumbnail_substrate.binaries import go_tool
from thumbnail_substrate.component import Component
from thumbnail_substrate.errors import SubstrateError
from thumbnail_substrate.kube_objects import (
    NODE_PODS,
    audit_policy,
    default_storage_class,
    kwok_node,
    pool_volume,
)
from thumbnail_substrate.netns import Forward, NetworkNamespace
from thumbnail_substrate.pki import write_service_account_keys, write_serving_cert
from thumbnail_substrate.process import ManagedProcess, ensure_port_free, free_port, wait_until

NODE_COUNT = 2
PV_POOL_SIZE = 40
# Inside a network namespace the API server has the node's address and the usual port.
NETNS_APISERVER_PORT = 6443
KUBERNETES_SERVICE_IP = "10.96.0.1"


class KubeCluster(Component):
    name = "kube"

    def __init__(
        self,
        workdir: Path | None = None,
        port: int | None = None,
        *,
        nodes: int = NODE_COUNT,
        node_pods: int = NODE_PODS,
        pv_pool: int = PV_POOL_SIZE,
        audit: bool = False,
        client_qps: float | None = None,
        netns: NetworkNamespace | None = None,
    ) -> None:
        """`nodes` kwok nodes of `node_pods` pods each; `pv_pool` pre-created volumes;
        `audit` writes every write request to `audit_log` (JSON lines, see
        `kube_objects.audit_policy`); `client_qps` raises the client rate limit of the
        controller manager and the scheduler (their defaults: 20 and 50 requests/s, burst
        1.5x and 2x), which otherwise bounds how fast hundreds of pods appear.

        With `netns`, every process runs inside that network namespace, the API server on the
        node's address, and the host reaches it through a forward on 127.0.0.1:`port`;
        `nodes=0` then leaves the nodes to a real kubelet (`node.RealCluster`)."""
        super().__init__(workdir)
        if nodes < (0 if netns else 1) or node_pods < 1 or pv_pool < 0:
            raise ValueError("nodes and node_pods must be >= 1 and pv_pool >= 0")
        self.nodes = nodes
        self.node_pods = node_pods
        self.pv_pool = pv_pool
        self.audit = audit
        self.client_qps = client_qps
        self.netns = netns
        self.audit_log = self.workdir / "audit.log"
        self.port = port or free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.workdir / "kubeconfig"
        # What processes inside the namespace use (the same file without a namespace).
        self.internal_kubeconfig = (
            self.workdir / "kubeconfig-internal" if netns else self.kubeconfig
        )
        self.internal_server = (
            f"https://{netns.node_ip}:{NETNS_APISERVER_PORT}" if netns else self.server
        )
        self.token = secrets.token_urlsafe(32)
        self._etcd_port, self._etcd_peer_port = free_port(), free_port()
        self._kwok_port = free_port()
        self._certs = self.workdir / "certs"

    # -- HTTP helpers (urllib: the substrate must not depend on the code under test) --

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self._certs / "apiserver.crt"))

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None,
        *, content_type: str = "application/yaml",
    ) -> Any:
        """`body` is sent as YAML, or as JSON for another `content_type` (the patch types)."""
        if body is None:
            data = None
        elif content_type == "application/yaml":
            data = yaml.safe_dump(body).encode()
        else:
            data = json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        with urllib.request.urlopen(req, timeout=10, context=self._ssl()) as resp:
            return yaml.safe_load(resp.read() or b"null")

    def merge_patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def create(self, path: str, body: dict[str, Any]) -> None:
        try:
            self.request("POST", path, body)
        except urllib.error.HTTPError as err:
            if err.code != 409:  # already exists: restarts reuse the work directory
                detail = err.read().decode(errors="replace")[:500]
                raise SubstrateError(f"creating {path} failed ({err.code}): {detail}") from err

    # -- lifecycle --

    def _write_files(self) -> None:
        self._certs.mkdir(exist_ok=True)
        if not (self._certs / "sa.key").exists():
            write_service_account_keys(self._certs / "sa.key", self._certs / "sa.pub")
        if self.netns:
            write_serving_cert(
                self._certs / "apiserver.crt",
                self._certs / "apiserver.key",
                ips=["127.0.0.1", self.netns.node_ip, KUBERNETES_SERVICE_IP],
                dns_names=["localhost", "kubernetes", "kubernetes.default",
                           "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"],
            )
        (self.workdir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        self._write_kubeconfig(self.kubeconfig, self.server)
        if self.internal_kubeconfig != self.kubeconfig:
            self._write_kubeconfig(self.internal_kubeconfig, self.internal_server)
        if self.audit:
            (self.workdir / "audit-policy.yaml").write_text(yaml.safe_dump(audit_policy()))

    def _write_kubeconfig(self, path: Path, server: str) -> None:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "substrate",
                            "cluster": {
                                "server": server,
                                "certificate-authority": str(self._certs / "apiserver.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": self.token}}],
                    "contexts": [
                        {
                            "name": "substrate",
                            "context": {
                                "cluster": "substrate",
                                "user": "admin",
                                "namespace": "default",
                            },
                        }
                    ],
                    "current-context": "substrate",
                }
            )
        )
        path.chmod(0o600)

    def _audit_flags(self) -> list[str | Path]:
        if not self.audit:
            return []
        return [
            "--audit-policy-file",
            self.workdir / "audit-policy.yaml",
            "--audit-log-path",
            self.audit_log,
            "--audit-log-format=json",
            "--audit-log-maxsize=0",  # one file, never rotated
        ]

    def _client_flags(self, burst_factor: float) -> list[str | Path]:
        if self.client_qps is None:
            return []
        return [
            f"--kube-api-qps={self.client_qps:g}",
            f"--kube-api-burst={max(1, round(self.client_qps * burst_factor))}",
        ]

    def audit_events(self) -> Iterator[dict[str, Any]]:
        """The audit log's events so far (empty without `audit=True`)."""
        if not self.audit or not self.audit_log.exists():
            return
        with self.audit_log.open() as log:
            for line in log:
                if line.strip():
                    event: dict[str, Any] = json.loads(line)
                    yield event

    def _spawn(self, name: str, argv: list[str | Path]) -> ManagedProcess:
        return super()._spawn(name, self.netns.wrap(argv) if self.netns else argv)

    def _ready(self, path: str) -> bool:
        try:
            self.request("GET", path)
            return True
        except (urllib.error.URLError, ssl.SSLError, ConnectionError, OSError):
            return False

    def start(self) -> Self:
        for port in (self.port, self._etcd_port, self._etcd_peer_port):
            ensure_port_free(port, self.name)
        names = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
        binaries = {n: go_tool(n) for n in [*names, *(["kwok"] if self.nodes else [])]}
        self._write_files()
        self.processes = []
        started = time.monotonic()

        etcd_url = f"http://127.0.0.1:{self._etcd_port}"
        etcd = self._spawn(
            "etcd",
            [
                binaries["etcd"],
                "--data-dir",
                self.workdir / "etcd",
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{self._etcd_peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{self._etcd_peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{self._etcd_peer_port}",
                "--listen-metrics-urls",
                f"http://127.0.0.1:{free_port()}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(2 * 1024**3),
                "--log-level",
                "warn",
            ],
        )
        # Inside a namespace etcd's loopback is not ours to reach: the API server's own
        # readiness (which needs etcd) is the check there.
        if not self.netns:
            wait_until(
                lambda: etcd.check_alive() and _http_ok(f"{etcd_url}/health"),
                timeout=30,
                what="etcd",
                log=etcd.log,
            )

        apiserver = self._spawn(
            "kube-apiserver",
            [
                binaries["kube-apiserver"],
                "--etcd-servers",
                etcd_url,
                *self._serving_flags(),
                "--token-auth-file",
                self.workdir / "tokens.csv",
                "--authorization-mode",
                "RBAC",
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                self._certs / "sa.pub",
                "--service-account-signing-key-file",
                self._certs / "sa.key",
                "--service-cluster-ip-range",
                "10.96.0.0/16",
                "--service-node-port-range",
                "30000-32767",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
                *self._audit_flags(),
            ],
        )
        if self.netns:
            forward = Forward(
                self.netns, NETNS_APISERVER_PORT, host_port=self.port,
                log=self.workdir / "forward-apiserver.log",
            )
            forward.start()
            self.processes.append(forward)
        wait_until(
            lambda: apiserver.check_alive() and self._ready("/readyz"),
            timeout=90,
            what="kube-apiserver",
            log=apiserver.log,
        )

        kcm = self._spawn(
            "kube-controller-manager",
            [
                binaries["kube-controller-manager"],
                "--kubeconfig",
                self.internal_kubeconfig,
                "--leader-elect=false",
                "--secure-port=0",
                "--controllers=*",
                "--service-account-private-key-file",
                self._certs / "sa.key",
                "--root-ca-file",
                self._certs / "apiserver.crt",
                "--use-service-account-credentials=false",
                "--concurrent-gc-syncs=5",
                "--v=1",
                *self._client_flags(1.5),
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                binaries["kube-scheduler"],
                "--kubeconfig",
                self.internal_kubeconfig,
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
                *self._client_flags(2),
            ],
        )
        if self.nodes:
            self._start_kwok(binaries["kwok"])
        self._bootstrap_objects()
        wait_until(
            lambda: (
                kcm.check_alive()
                and self._ready("/api/v1/namespaces/default/serviceaccounts/default")
            ),
            timeout=60,
            what="kube-controller-manager (default ServiceAccount)",
            log=kcm.log,
        )
        if self.nodes:
            wait_until(
                self._nodes_ready, timeout=60, what="kwok nodes", log=self.workdir / "kwok.log"
            )
        self.startup_seconds = time.monotonic() - started
        return self

    def _serving_flags(self) -> list[str | Path]:
        if self.netns:
            return [
                "--bind-address", "0.0.0.0",
                "--advertise-address", self.netns.node_ip,
                "--secure-port", str(NETNS_APISERVER_PORT),
                "--tls-cert-file", self._certs / "apiserver.crt",
                "--tls-private-key-file", self._certs / "apiserver.key",
                # The node's name resolves nowhere; its address is what the kubelet reports.
                "--kubelet-preferred-address-types", "InternalIP",
            ]
        return [
            "--bind-address", "127.0.0.1",
            "--advertise-address", "127.0.0.1",
            "--secure-port", str(self.port),
            "--cert-dir", self._certs,
        ]

    def _start_kwok(self, binary: Path) -> None:
        self._spawn(
            "kwok",
            [
                binary,
                "--kubeconfig",
                self.kubeconfig,
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--manage-nodes-with-label-selector=",
                "--manage-single-node=",
                "--cidr=10.244.0.0/16",
                # Without leases the node lifecycle controller marks nodes NotReady after ~50 s.
                "--node-lease-duration-seconds=40",
                "--node-ip=10.0.0.1",
                f"--server-address=127.0.0.1:{self._kwok_port}",
            ],
        )

    def _bootstrap_objects(self) -> None:
        for i in range(self.nodes):
            self.create("/api/v1/nodes", kwok_node(f"kwok-node-{i}", self.node_pods))
        if not self.nodes:
            return  # a real node brings its own storage
        self.create("/apis/storage.k8s.io/v1/storageclasses", default_storage_class())
        for i in range(self.pv_pool):
            self.create("/api/v1/persistentvolumes", pool_volume(i))

    def _nodes_ready(self) -> bool:
        for proc in self.processes:
            proc.check_alive()
        nodes = self.request("GET", "/api/v1/nodes")["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) >= self.nodes

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


__all__ = ["KubeCluster", "SubstrateError"]
