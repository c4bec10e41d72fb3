"""scripts/ and the make k8s-* targets: one-line errors for missing prerequisites, and the
exact docker/kind commands they issue (recorded by stand-in executables, since there is no
Docker engine here; the real run is tests/e2e)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.support import IMAGES, ROOT, kubectl_path, pyproject

COMPONENT_IMAGES = {
    "server": "thumbnail-service-server",
    "worker": "thumbnail-service-worker",
    "operator": "thumbnail-operator",
}
SYSTEM_PATH = "/usr/bin:/bin"


def _stub(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text(f"#!/bin/sh\necho \"{name} $*\" >> \"{bindir}/calls.log\"\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(argv: list[str], path: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in {"KUBECONFIG", "KUBE_CONTEXT", "REGISTRY", "IMAGE_TAG", "KUBECTL"}}
    return subprocess.run(
        argv, cwd=ROOT, env={**clean, "PATH": path, **env}, capture_output=True, text=True,
        timeout=60, check=False,
    )


def _calls(bindir: Path) -> list[str]:
    log = bindir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _one_error_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr


@pytest.mark.parametrize(
    "script,missing",
    [("build.sh", "docker"), ("kind-load-images.sh", "docker"), ("deploy.sh", "kubectl")],
)
def test_scripts_name_the_missing_tool(tmp_path: Path, script: str, missing: str) -> None:
    result = _run([str(ROOT / "scripts" / script)], f"{tmp_path}:{SYSTEM_PATH}",
                  KUBECTL=str(tmp_path / "kubectl"))
    _one_error_line(result, f"{missing} is required")


def test_kind_load_names_missing_kind(tmp_path: Path) -> None:
    _stub(tmp_path, "docker", "exit 0")
    result = _run([str(ROOT / "scripts" / "kind-load-images.sh")], f"{tmp_path}:{SYSTEM_PATH}")
    _one_error_line(result, "kind is required")


def test_build_reports_a_stopped_docker_daemon(tmp_path: Path) -> None:
    _stub(tmp_path, "docker", 'test "$1" = info && exit 1; exit 0')
    result = _run([str(ROOT / "scripts" / "build.sh")], f"{tmp_path}:{SYSTEM_PATH}")
    _one_error_line(result, "Docker daemon is not reachable")
    assert not [c for c in _calls(tmp_path) if c.startswith("docker build")]


def test_build_builds_every_image_with_labels(tmp_path: Path) -> None:
    _stub(tmp_path, "docker", "exit 0")
    result = _run([str(ROOT / "scripts" / "build.sh")], f"{tmp_path}:{SYSTEM_PATH}",
                  IMAGE_TAG="t1")
    assert result.returncode == 0, result.stderr
    builds = [c for c in _calls(tmp_path) if c.startswith("docker build")]
    version = pyproject()["project"]["version"]
    assert len(builds) == len(COMPONENT_IMAGES) == len(list(IMAGES.glob("*/Dockerfile")))
    for component, image in COMPONENT_IMAGES.items():
        (call,) = [c for c in builds if f"images/{component}/Dockerfile" in c]
        assert f"--tag {image}:t1" in call and f"--tag {image}:{version}" in call
        assert f"--build-arg VERSION={version}" in call and "--build-arg REVISION=" in call
        assert call.endswith(" ."), "the build context must be the repository root"


def test_kind_load_checks_the_cluster_and_loads_each_image(tmp_path: Path) -> None:
    _stub(tmp_path, "docker", "exit 0")
    _stub(tmp_path, "kind", 'test "$1" = get && echo other; exit 0')
    result = _run([str(ROOT / "scripts" / "kind-load-images.sh")], f"{tmp_path}:{SYSTEM_PATH}",
                  KIND_CLUSTER_NAME="demo")
    _one_error_line(result, "no Kind cluster named 'demo'")

    _stub(tmp_path, "kind", 'test "$1" = get && echo demo; exit 0')
    result = _run([str(ROOT / "scripts" / "kind-load-images.sh")], f"{tmp_path}:{SYSTEM_PATH}",
                  KIND_CLUSTER_NAME="demo", IMAGE_TAG="t2")
    assert result.returncode == 0, result.stderr
    loads = [c for c in _calls(tmp_path) if c.startswith("kind load")]
    assert sorted(loads) == sorted(
        f"kind load docker-image --name demo {image}:t2" for image in COMPONENT_IMAGES.values()
    )


def test_deploy_reports_an_unreachable_cluster(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: x}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
    )
    result = _run([str(ROOT / "scripts" / "deploy.sh")], SYSTEM_PATH,
                  KUBECTL=str(kubectl_path()), KUBECONFIG=str(kubeconfig))
    _one_error_line(result, "cannot reach the Kubernetes API")


@pytest.mark.parametrize(
    "target,missing",
    [("k8s-setup", "docker"), ("k8s-build", "docker"), ("k8s-load", "docker"),
     ("k8s-all", "docker"), ("e2e", "docker"), ("k8s-clean", "kind")],
)
def test_make_targets_fail_with_one_line(target: str, missing: str, tmp_path: Path) -> None:
    result = _run(["make", "--no-print-directory", "-s", target], f"{tmp_path}:{SYSTEM_PATH}")
    _one_error_line(result, f"{missing} is required")


def test_make_deploy_names_missing_kubectl(tmp_path: Path) -> None:
    result = _run(["make", "--no-print-directory", "-s", "k8s-deploy",
                   f"KUBECTL={tmp_path}/kubectl"], f"{tmp_path}:{SYSTEM_PATH}")
    _one_error_line(result, "kubectl is required")
