"""The end-to-end suite's cluster, as a fixture: the same tests run on real pods

- on the **real nodes** of the substrate (default; part of `make test`; two nodes, as Kind's
  default layout has two workers): images built here (`make images`), imported into their
  containerd, the ThumbnailService's image fields pointed at them as a user of a private
  registry would;
- on **Kind** (`E2E_CLUSTER=kind`, `make e2e`): images built with Docker and `kind load`ed;
  skipped with a one-line reason where Docker is absent.

Fixtures build up what a user does: `operator` installs it with `kubectl apply -k
manifests/` (an overlay only swaps the image), `service` applies the documented sample
and waits for READY True. Test modules run in file order and share them; the cluster lives
as long as this package runs (package scope), so the rest of the suite does not share the
machine with it.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from thumbnail_substrate.deploy import apply_sample, install_operator
from thumbnail_substrate.testing import Obj, kubectl, kubectl_get, wait_for

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "tests" / "data" / "sample.jpg"
NAMESPACE = "default"
API_PORT, CONSOLE_PORT = 30000, 30001
# A second ThumbnailService's API (tests/e2e/test_45_backup.py): its own node port.
SPARE_PORT = 30002
READY_TIMEOUT = float(os.environ.get("E2E_READY_TIMEOUT", "420"))
E2E_NODES = 2

@dataclass
class E2ECluster:
    """What the tests need of a cluster, whichever it is."""

    flavour: str
    kubeconfig: Path
    api_url: str
    console_url: str
    spare_url: str  # NodePort SPARE_PORT
    # component -> image reference; components missing here keep the sample's image.
    images: dict[str, str]
    retag: Callable[[str, str], None]  # (component, new_ref): the image under another name too
    crash: Callable[[Obj], None]  # (pod): SIGKILL its containers' processes at once

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        return kubectl(self.kubeconfig, *args, stdin=stdin, timeout=timeout)

    def get(self, *args: str) -> Obj:
        return kubectl_get(self.kubeconfig, *args)


# -- the clusters -----------------------------------------------------------------------


def _real_node_cluster() -> Iterator[E2ECluster]:
    from thumbnail_substrate.errors import SubstrateError
    from thumbnail_substrate.images import local_images
    from thumbnail_substrate.node import RealCluster

    try:
        images = local_images()
    except SubstrateError as err:
        pytest.fail(f"the real-node suite needs the local images: {err}")
    # Two nodes (Kind's default layout, docs/testing.md): spread and drains are real.
    with RealCluster(images=images, node_ports=(API_PORT, CONSOLE_PORT, SPARE_PORT),
                     nodes=E2E_NODES) as cluster:

        def retag(component: str, new_ref: str) -> None:
            cluster.tag_image(images[component].ref, new_ref)

        def crash(pod: Obj) -> None:
            for status in pod["status"]["containerStatuses"]:
                cluster.kill_container(pod["metadata"]["uid"], status["containerID"])

        yield E2ECluster(
            flavour="real-node",
            kubeconfig=cluster.kubeconfig,
            api_url=cluster.node_port_url(API_PORT),
            console_url=cluster.node_port_url(CONSOLE_PORT),
            spare_url=cluster.node_port_url(SPARE_PORT),
            images={name: image.ref for name, image in images.items()},
            retag=retag,
            crash=crash,
        )


def docker_problem() -> str | None:
    """Why Kind cannot run here (one line), or None."""
    if shutil.which("docker") is None:
        return "Kind e2e needs Docker: the docker client is not in PATH"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except subprocess.TimeoutExpired:
        return "Kind e2e needs Docker: 'docker info' timed out"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no daemon"])[-1]
        return f"Kind e2e needs a running Docker daemon: 'docker info' failed ({reason[:120]})"
    if shutil.which("kind") is None:
        return "Kind e2e needs kind, which is not in PATH"
    return None


def _kind_cluster(keep: bool) -> Iterator[E2ECluster]:
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
    from pytest_kind import KindCluster

    name = os.environ.get("E2E_CLUSTER_NAME", "thumbnail-e2e")
    tag = os.environ.get("E2E_IMAGE_TAG", "e2e")
    cluster = KindCluster(name, kind_path=Path(shutil.which("kind") or "kind"))
    cluster.create(config_file=ROOT / "manifests" / "kind" / "cluster.yaml")
    env = {**os.environ, "KIND_CLUSTER_NAME": name, "IMAGE_TAG": tag,
           "KUBECONFIG": str(cluster.kubeconfig_path)}
    for script in ("build.sh", "kind-load-images.sh"):
        subprocess.run([str(ROOT / "scripts" / script)], cwd=ROOT, env=env, check=True,
                       timeout=3600)

    def retag(component: str, new_ref: str) -> None:
        subprocess.run(["docker", "tag", f"thumbnail-{component}:{tag}", new_ref], check=True)
        cluster.load_docker_image(new_ref)

    def crash(pod: Obj) -> None:
        # The node is a Docker container: kill the pod's processes from inside it.
        for status in pod["status"]["containerStatuses"]:
            cid = status["containerID"].split("://")[-1]
            script = (f"for f in $(find /sys/fs/cgroup -path '*{cid}*' -name cgroup.procs); "
                      "do for p in $(cat $f); do kill -9 $p; done; done")
            # Kind names each node's container after the node.
            subprocess.run(["docker", "exec", pod["spec"]["nodeName"], "sh", "-c", script],
                           check=True)

    try:
        yield E2ECluster(
            flavour="kind",
            kubeconfig=Path(cluster.kubeconfig_path),
            api_url=f"http://127.0.0.1:{API_PORT}",
            console_url=f"http://127.0.0.1:{CONSOLE_PORT}",
            spare_url=f"http://127.0.0.1:{SPARE_PORT}",
            images={
                "server": f"thumbnail-service-server:{tag}",
                "worker": f"thumbnail-service-worker:{tag}",
                "operator": f"thumbnail-operator:{tag}",
            },
            retag=retag,
            crash=crash,
        )
    finally:
        if not keep:
            cluster.delete()


@pytest.fixture(scope="package")
def e2e_cluster(request: pytest.FixtureRequest) -> Iterator[E2ECluster]:
    flavour = os.environ.get("E2E_CLUSTER", "real-node")
    if flavour == "kind":
        yield from _kind_cluster(bool(request.config.getoption("keep_cluster")))
    elif flavour == "real-node":
        yield from _real_node_cluster()
    else:
        pytest.fail(f"E2E_CLUSTER={flavour!r}: expected real-node or kind")


# -- what a user installs ---------------------------------------------------------------


@pytest.fixture(scope="package")
def operator(e2e_cluster: E2ECluster) -> Iterator[str]:
    """The operator, installed with `kubectl apply -k manifests/`; yields its image."""
    image = e2e_cluster.images["operator"]
    with tempfile.TemporaryDirectory(prefix="e2e-overlay-") as workdir:
        started = time.monotonic()
        install_operator(e2e_cluster.kubeconfig, image, Path(workdir), timeout=READY_TIMEOUT)
        print(f"operator available in {time.monotonic() - started:.1f}s")
        yield image


@dataclass(frozen=True)
class Service:
    """The deployed sample."""

    name: str
    spec: Obj
    ready_seconds: float


# The node label that keeps the sample's data stores on one node (see `service`).
DATA_STORE_LABEL = "thumbnails.platform.dev/e2e-data-stores"


def schedulable_nodes(cluster: E2ECluster) -> list[str]:
    """Nodes that take pods (Kind's control plane is tainted NoSchedule), in name order."""
    return sorted(
        node["metadata"]["name"] for node in cluster.get("nodes")["items"]
        if not node["spec"].get("unschedulable") and not any(
            taint.get("effect") == "NoSchedule" for taint in node["spec"].get("taints", []))
    )


@pytest.fixture(scope="package")
def service(e2e_cluster: E2ECluster, operator: str) -> Service:
    """The sample, its data stores on the first schedulable node: their volumes are local to
    a node (as Kind's local-path volumes are), so the drain test drains another one."""
    home = schedulable_nodes(e2e_cluster)[0]
    e2e_cluster.kubectl("label", "node", home, f"{DATA_STORE_LABEL}=true", "--overwrite")
    started = time.monotonic()
    body = apply_sample(
        e2e_cluster.kubeconfig, e2e_cluster.images, namespace=NAMESPACE, timeout=READY_TIMEOUT,
        data_store_nodes={DATA_STORE_LABEL: "true"},
    )
    return Service(
        name=body["metadata"]["name"], spec=body["spec"],
        ready_seconds=time.monotonic() - started,
    )


# -- helpers of the test modules --------------------------------------------------------


def selector(service: Service, component: str) -> str:
    return f"app.kubernetes.io/instance={service.name},app.kubernetes.io/component={component}"


def pods(cluster: E2ECluster, selector: str, namespace: str = NAMESPACE) -> list[Obj]:
    items: list[Obj] = cluster.get("-n", namespace, "pods", "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def admit_to_data_store(
    cluster: E2ECluster, service: Service, name: str, component: str, port: int, peer: Obj
) -> None:
    """A NetworkPolicy `name` of our own that lets `peer` (a NetworkPolicyPeer) reach the
    sample's `component` (postgresql, redis, minio) on `port`. The sample's own policies
    admit only its pods; policies add up, so this is what a user who shares a data store
    with other services writes (docs/operator.md, "Network policies")."""
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/instance": service.name,
                                            "app.kubernetes.io/component": component}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [peer], "ports": [{"protocol": "TCP", "port": port}]}],
        }}))


def api_key(cluster: E2ECluster, service: Service) -> str:
    encoded = cluster.kubectl(
        "-n", NAMESPACE, "get", "secret", f"{service.name}-credentials",
        "-o", "jsonpath={.data.THUMBNAIL_API_KEYS}",
    )
    return base64.b64decode(encoded).decode().split(",")[0].strip()


def submit_and_wait(http: httpx.Client, data: bytes, timeout: float = 180) -> dict[str, Any]:
    submitted = http.post("/v1/jobs", files={"file": ("sample.jpg", data, "image/jpeg")})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in {"succeeded", "failed"} else None

    return wait_for(finished, timeout=timeout, what=f"job {job_id}", interval=0.5,
                    ignore=(httpx.HTTPError,))


def ready_pods(cluster: E2ECluster, service: Service, component: str) -> list[Obj]:
    """The component's running pods whose containers are all ready."""
    return [
        p for p in pods(cluster, selector(service, component))
        if p["status"].get("phase") == "Running"
        and all(s["ready"] for s in p["status"].get("containerStatuses", [{"ready": False}]))
    ]
