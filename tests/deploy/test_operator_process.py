"""The operator as the shipped Deployment runs it: the real `thumbnail-operator` console
script, with the Deployment's args, authenticated by a token of the shipped ServiceAccount
(manifests/rbac). Its probes and metrics answer where the Deployment points them, and it
reconciles a sample under exactly those permissions.

The ports are swapped for free ones (the named container ports are kept), and the process
watches one fresh namespace (`-n`) so it never competes with the operator tests' in-process
operator, which watches the whole cluster.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import ShippedRbac, install_crds
from tests.deploy.support import ROOT, SAMPLES, Kubectl, kubectl_path, load_documents, the_one

pytestmark = pytest.mark.cluster


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _poll(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError) as err:
            last = err
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _service_account_kubeconfig(kubectl: Kubectl, rbac: ShippedRbac, path: Path) -> Path:
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    token = kubectl.run(
        "create", "token", rbac.account, "-n", rbac.namespace, "--duration=1h"
    ).stdout.strip()
    admin["users"] = [{"name": "operator", "user": {"token": token}}]
    for context in admin["contexts"]:
        context["context"]["user"] = "operator"
    path.write_text(yaml.safe_dump(admin))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def process(
    kubectl: Kubectl, shipped_rbac: ShippedRbac, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("operator-process")
    kubeconfig = _service_account_kubeconfig(kubectl, shipped_rbac, workdir / "kubeconfig")
    watched = f"proc-{os.urandom(4).hex()}"
    kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": watched}}])
    (container,) = the_one("Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: _free_port() for p in container["ports"]}
    shipped = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = [
        arg.replace(f"={shipped['metrics']}", f"={ports['metrics']}")
        if arg.startswith("--metrics-port=")
        else arg.replace(f"={shipped['health']}", f"={ports['health']}")
        if arg.startswith("--liveness-port=")
        # The session's shared webhook (thumbnail_substrate.local_webhook) serves conversions on
        # 9443 with the same certificate Secret; a second manager of that Secret and of the
        # CRD's caBundle would race it (x509 unknown authority), so this process serves none.
        else "--webhook-port=0"
        if arg.startswith("--webhook-port=")
        else arg
        for arg in container["args"]
    ]
    wanted = {f"--liveness-port={ports['health']}", f"--metrics-port={ports['metrics']}"}
    assert wanted <= set(args), f"the Deployment's args no longer set the ports: {args}"
    script = Path(sys.executable).parent / container.get("command", ["thumbnail-operator"])[0]
    log = (workdir / "operator.log").open("w")
    proc = subprocess.Popen(
        [str(script), *args, "--kubeconfig", str(kubeconfig), "-n", watched],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
    )
    try:
        yield {"proc": proc, "ports": ports, "container": container, "namespace": watched,
               "log": workdir / "operator.log"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        kubectl.run("delete", "namespace", watched, "--wait=false", check=False)


def test_probes_answer_where_the_deployment_points(process: dict[str, Any]) -> None:
    container, ports = process["container"], process["ports"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        url = f"http://127.0.0.1:{ports[get['port']]}{get['path']}"

        def healthy(url: str = url) -> bool:
            return _http(url)[0] == 200

        assert _poll(healthy, 60, f"{probe} {url}"), process["log"].read_text()[-2000:]
    assert process["proc"].poll() is None, process["log"].read_text()[-2000:]


def test_metrics_served_on_the_metrics_port(process: dict[str, Any]) -> None:
    status, body = _http(f"http://127.0.0.1:{process['ports']['metrics']}/metrics")
    assert status == 200
    assert "thumbnail_operator_reconciles_total" in body


def test_reconciles_a_sample_with_the_shipped_permissions(
    kubectl: Kubectl, process: dict[str, Any]
) -> None:
    namespace = process["namespace"]
    (body,) = load_documents(SAMPLES / "thumbnailservice-minimal.yaml")
    body["spec"] = {"persistence": {"enabled": False}}
    kubectl.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    name = body["metadata"]["name"]

    def status() -> dict[str, Any] | None:
        out = kubectl.run("get", "tns", name, "-n", namespace, "-o", "json").stdout
        found: dict[str, Any] | None = json.loads(out).get("status")
        return found if found and found.get("conditions") else None

    observed = _poll(status, 60, "status written by the operator process")
    assert {c["type"] for c in observed["conditions"]} >= {"Ready", "Progressing", "Degraded"}
    degraded = next(c for c in observed["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "False", degraded  # no write was refused (RBAC)
    children = kubectl.run(
        "get", "deployments,statefulsets,services,configmaps,secrets,jobs", "-n", namespace,
        "-l", f"app.kubernetes.io/instance={name}", "-o", "name",
    ).stdout.split()
    assert any(c.endswith(f"/{name}-server") for c in children), children
    assert any(c.endswith(f"/{name}-credentials") for c in children), children
    log = process["log"].read_text()
    # A whole-word 403: ports, ids and log timestamps (",403 INFO") that merely contain the
    # digits are not refusals.
    assert not re.search(r"(?<![,:.])\b403\b", log) and "Forbidden" not in log, log[-3000:]


def test_deploy_script_installs_the_operator_and_waits_until_ready(
    kubectl: Kubectl, process: dict[str, Any]
) -> None:
    """scripts/deploy.sh for real (as `make k8s-deploy`/`k8s-all` run it): `apply -k`, CRD
    Established, operator rollout (kwok runs the pod), the full sample, `WAIT=1` until Ready.
    The reconciling is done by the operator process above, which watches the sample's
    namespace."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubectl.kubeconfig),
        "KUBECTL": str(kubectl_path()),
        "SAMPLE": str(SAMPLES / "thumbnailservice-full.yaml"),
        "SAMPLE_NAMESPACE": process["namespace"],
        "WAIT": "1",
        "WAIT_TIMEOUT": "180s",
        "OPERATOR_IMAGE": "registry.example.com:5000/team/thumbnail-operator:9.9.9",
    }
    for unset in ("KUBE_CONTEXT", "REGISTRY", "IMAGE_TAG"):
        env.pop(unset, None)
    try:
        run = subprocess.run(
            [str(ROOT / "scripts" / "deploy.sh")], env=env, capture_output=True, text=True,
            timeout=400, check=False,
        )
    finally:
        install_crds(kubectl)  # the shipped CRD as the rest of the session expects it
    output = run.stdout + run.stderr
    assert run.returncode == 0, output + process["log"].read_text()[-3000:]
    assert "condition met" in output, output
    assert "http://localhost:30000" in output, output
    rollout = kubectl.run(
        "-n", "thumbnail-system", "get", "deployment", "thumbnail-operator", "-o", "json"
    ).stdout
    operator = json.loads(rollout)
    assert operator["status"].get("availableReplicas") == 1
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert container["image"] == env["OPERATOR_IMAGE"]
    assert not list(ROOT.glob(".deploy-overlay.*")), "deploy.sh left its overlay behind"
    cr = json.loads(kubectl.run(
        "-n", process["namespace"], "get", "tns", "thumbnail-service", "-o", "json"
    ).stdout)
    ready = next(c for c in cr["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
