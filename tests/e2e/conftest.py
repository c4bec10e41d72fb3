"""Fixtures of the end-to-end test: a fresh Kind cluster (pytest-kind) running what
`make k8s-all` installs, built and deployed by the same scripts.

Skips (with the reason, at fixture time) unless Docker, kind and kubectl are usable; the
default test command deselects these tests (`-m "not e2e"`), `make e2e` runs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_kind import KindCluster

ROOT = Path(__file__).resolve().parents[2]
KIND_CONFIG = ROOT / "manifests" / "kind" / "cluster.yaml"
SAMPLE = ROOT / "manifests" / "samples" / "thumbnailservice-full.yaml"
CLUSTER_NAME = os.environ.get("E2E_CLUSTER_NAME", "thumbnail-e2e")
IMAGE_TAG = os.environ.get("E2E_IMAGE_TAG", "e2e")
NAMESPACE = "default"


def docker_problem() -> str | None:
    """Why the e2e test cannot run here (one line), or None."""
    if shutil.which("docker") is None:
        return "e2e needs Docker: the docker client is not in PATH"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except subprocess.TimeoutExpired:
        return "e2e needs Docker: 'docker info' timed out"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no daemon"])[-1]
        return f"e2e needs a running Docker daemon: 'docker info' failed ({reason[:120]})"
    for tool in ("kind", "kubectl"):
        if shutil.which(tool) is None:
            return f"e2e needs {tool}, which is not in PATH"
    return None


def host_port_busy(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Deployment:
    """The deployed sample: its cluster, name and the API on the Kind host port."""

    cluster: KindCluster
    name: str
    spec: dict[str, Any]
    api_url: str

    def kubectl(self, *args: str) -> str:
        out: str = self.cluster.kubectl(*args)
        return out

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig_path)}


def _run_script(script: str, env: dict[str, str]) -> None:
    """Run one of scripts/ exactly as the Makefile does; fail with its output."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / script)], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=3600, check=False,
    )
    print(proc.stdout)
    if proc.returncode != 0:
        pytest.fail(f"scripts/{script} failed ({proc.returncode}):\n{proc.stdout[-4000:]}")


@pytest.fixture(scope="session")
def kind_cluster_e2e(request: pytest.FixtureRequest) -> Iterator[KindCluster]:
    problem = docker_problem()
    if problem:
        pytest.skip(problem)
    ports = [
        m["hostPort"]
        for node in yaml.safe_load(KIND_CONFIG.read_text())["nodes"]
        for m in node.get("extraPortMappings", [])
    ]
    busy = [p for p in ports if host_port_busy(p)]
    existing = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True,
                              check=False).stdout.split()
    if busy and CLUSTER_NAME not in existing:
        pytest.fail(f"host ports {busy} are in use (another Kind cluster? `make k8s-clean`)")
    cluster = KindCluster(
        CLUSTER_NAME,
        kind_path=Path(shutil.which("kind") or "kind"),
        kubectl_path=Path(shutil.which("kubectl") or "kubectl"),
    )
    cluster.create(config_file=KIND_CONFIG)
    try:
        yield cluster
    finally:
        if not request.config.getoption("keep_cluster"):
            cluster.delete()


@pytest.fixture(scope="session")
def deployment(kind_cluster_e2e: KindCluster) -> Deployment:
    """scripts/build.sh -> scripts/kind-load-images.sh -> scripts/deploy.sh (WAIT=1): the
    `make k8s-all` flow, on the e2e cluster, with a dedicated image tag."""
    env = {
        **os.environ,
        "KIND_CLUSTER_NAME": CLUSTER_NAME,
        "KUBECONFIG": str(kind_cluster_e2e.kubeconfig_path),
        "IMAGE_TAG": IMAGE_TAG,
        "OPERATOR_IMAGE": f"thumbnail-operator:{IMAGE_TAG}",
        "SAMPLE": str(SAMPLE),
        "SAMPLE_NAMESPACE": NAMESPACE,
        "WAIT": "1",
        "WAIT_TIMEOUT": os.environ.get("E2E_WAIT_TIMEOUT", "900s"),
    }
    env.pop("KUBE_CONTEXT", None)
    env.pop("REGISTRY", None)
    for script in ("build.sh", "kind-load-images.sh", "deploy.sh"):
        _run_script(script, env)
    body = yaml.safe_load(SAMPLE.read_text())
    node_port = body["spec"]["server"]["service"]["nodePort"]
    assert node_port["enabled"], "the e2e sample must expose the API on a node port"
    return Deployment(
        cluster=kind_cluster_e2e,
        name=body["metadata"]["name"],
        spec=body["spec"],
        api_url=f"http://127.0.0.1:{node_port['port']}",
    )
