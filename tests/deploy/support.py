"""Helpers for the deployment tests: the repository layout, kubectl, kustomize output."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from thumbnail_substrate.binaries import tools_bindir
from thumbnail_substrate.testing import load_documents

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
NAMESPACED = MANIFESTS / "namespaced"  # the namespaced install (Roles)
CHART = ROOT / "charts" / "thumbnail-operator"
SAMPLES = MANIFESTS / "samples"
CRDS = ROOT / "crds"
OPERATOR_RBAC = ROOT / "operator" / "rbac.yaml"
IMAGES = ROOT / "images"
OPERATOR_NAMESPACE = "thumbnail-system"

Obj = dict[str, Any]


def kubectl_path() -> Path:
    """The pinned kubectl from the tools cache (`make tools`), else the one on PATH."""
    cached = tools_bindir() / "kubectl"
    if os.access(cached, os.X_OK):
        return cached
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found: run `make tools` (or install kubectl)")
    return Path(found)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("Warning:")]


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig (the real local control plane)."""

    kubeconfig: Path

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> Result:
        proc = subprocess.run(
            [str(kubectl_path()), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return result

    def dry_run(self, documents: list[Obj], namespace: str | None = None) -> Result:
        """Server-side dry-run of a server-side apply (as scripts/deploy.sh applies), with
        strict field validation (unknown fields fail); never raises."""
        args = [
            "apply", "--server-side", "--field-manager=deploy-tests", "--force-conflicts",
            "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
        ]
        if namespace:
            args += ["-n", namespace]
        return self.run(*args, stdin=yaml.safe_dump_all(documents), check=False)

    def apply(self, documents: list[Obj], namespace: str | None = None) -> Result:
        args = ["apply", "--server-side", "--field-manager=deploy-tests", "--force-conflicts"]
        if namespace:
            args += ["-n", namespace]
        return self.run(*args, "-f", "-", stdin=yaml.safe_dump_all(documents))


# Cluster-scoped kinds kubectl's kustomize does not know: its namespace transformer stamps
# them with the install's namespace, which `kubectl apply` and the API server drop for a
# cluster-scoped object (tests/e2e applies manifests/ with them).
UNKNOWN_CLUSTER_SCOPED = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


@cache
def kustomize_build(directory: Path = MANIFESTS) -> tuple[Obj, ...]:
    """`kubectl kustomize DIR`: what `kubectl apply -k DIR` applies (manifests/, the
    cluster-wide install, unless told), with the namespace dropped where apply drops it."""
    proc = subprocess.run(
        [str(kubectl_path()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{proc.stderr}")
    docs = tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)
    for doc in docs:
        if doc["kind"] in UNKNOWN_CLUSTER_SCOPED:
            doc["metadata"].pop("namespace", None)
    return docs


def built(kind: str, name: str | None = None, directory: Path = MANIFESTS) -> list[Obj]:
    return [
        doc
        for doc in kustomize_build(directory)
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def the_one(kind: str, directory: Path = MANIFESTS) -> Obj:
    found = built(kind, directory=directory)
    assert len(found) == 1, f"expected exactly one {kind} in {directory}, found {len(found)}"
    return found[0]


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.yaml"))


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def console_scripts() -> dict[str, str]:
    scripts: dict[str, str] = pyproject()["project"]["scripts"]
    return scripts


def crd_name() -> str:
    (doc,) = load_documents(CRDS / "thumbnailservices.yaml")
    name: str = doc["metadata"]["name"]
    return name


def helm_path() -> Path:
    """The pinned helm from the tools cache (`make tools`, tools/go/helm)."""
    cached = tools_bindir() / "helm"
    if not os.access(cached, os.X_OK):
        raise RuntimeError(f"helm not found in {tools_bindir()}: run `make tools`")
    return cached


def helm(*args: str, values: Obj | None = None) -> Result:
    """Run the pinned helm offline (its cache, config and data in a throw-away directory);
    `values` is passed as a values file. Never raises."""
    with tempfile.TemporaryDirectory(prefix="helm-") as home:
        extra: list[str] = []
        if values is not None:
            path = Path(home) / "values.yaml"
            path.write_text(yaml.safe_dump(values))
            extra = ["-f", str(path)]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "HELM_CACHE_HOME": f"{home}/cache",
            "HELM_CONFIG_HOME": f"{home}/config",
            "HELM_DATA_HOME": f"{home}/data",
        }
        proc = subprocess.run(
            [str(helm_path()), *args, *extra], capture_output=True, text=True, timeout=120,
            env=env, check=False,
        )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def helm_template(namespace: str, values: Obj | None = None) -> list[Obj]:
    """`helm template` of charts/thumbnail-operator into `namespace`, parsed."""
    result = helm("template", "thumbnail-operator", str(CHART), "--namespace", namespace,
                  values=values)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
