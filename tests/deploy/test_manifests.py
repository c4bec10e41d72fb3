"""Every shipped manifest, every sample and every object the operator renders for the samples
is accepted by the real local API server (server-side dry-run, strict field validation, the
CRD installed for real, Pod Security "restricted" warnings treated as failures)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import (
    CRDS,
    MANIFESTS,
    NAMESPACED,
    OPERATOR_NAMESPACE,
    UNKNOWN_CLUSTER_SCOPED,
    Kubectl,
    Obj,
    built,
    kustomize_build,
    load_documents,
    sample_files,
    the_one,
)
from thumbnail_operator.api.conversion import V1, to_v1
from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders import Owner, build_desired_state, external_secret_names
from thumbnail_operator.builders.credentials import ensure_credentials
from thumbnail_operator.settings import from_command_line

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


def _names(result_stdout: str) -> set[str]:
    return {line.split("/", 1)[1].split(" ")[0] for line in result_stdout.split() if "/" in line}


# -- static checks on the kustomize output ------------------------------------------------


def test_crd_copy_matches_crds_dir() -> None:
    """manifests/crds/ is a copy of crds/ (`make manifests`); a stale copy fails here."""
    sources = sorted(p.name for p in CRDS.glob("*.yaml"))
    assert sources, "no CRD in crds/"
    copies = MANIFESTS / "crds"
    listed = load_documents(copies / "kustomization.yaml")[0]["resources"]
    assert sorted(listed) == sources, "manifests/crds/kustomization.yaml must list every CRD"
    for name in sources:
        copy_path = copies / name
        assert copy_path.exists(), f"manifests/crds/{name} missing: run `make manifests`"
        assert copy_path.read_bytes() == (CRDS / name).read_bytes(), (
            f"manifests/crds/{name} differs from crds/{name}: run `make manifests`"
        )


def test_kustomize_output_is_a_complete_install() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in kustomize_build()}
    crd_names = {doc["metadata"]["name"] for p in CRDS.glob("*.yaml") for doc in load_documents(p)}
    for crd in crd_names:
        assert ("CustomResourceDefinition", crd) in kinds
    for kind in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"):
        assert any(k == kind for k, _ in kinds), f"no {kind} in manifests/"
    assert the_one("Namespace")["metadata"]["name"] == OPERATOR_NAMESPACE
    for doc in kustomize_build():
        if doc["kind"] not in {"Namespace", "CustomResourceDefinition", "ClusterRole",
                               "ClusterRoleBinding", *UNKNOWN_CLUSTER_SCOPED}:
            assert doc["metadata"].get("namespace") == OPERATOR_NAMESPACE, doc["metadata"]


def test_operator_deployment_is_wired_to_its_account_and_probes() -> None:
    deployment = the_one("Deployment")
    account = the_one("ServiceAccount")["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account
    binding = the_one("ClusterRoleBinding")
    assert {"kind": "ServiceAccount", "name": account, "namespace": OPERATOR_NAMESPACE} in (
        binding["subjects"]
    )
    assert binding["roleRef"]["name"] == the_one("ClusterRole")["metadata"]["name"]
    (container,) = pod["containers"]
    assert "command" not in container, "use the image ENTRYPOINT (thumbnail-operator)"
    # the operator's own CLI must accept them
    args = from_command_line(container.get("args", []))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args.liveness_port and ports["health"] == args.liveness_port
    assert args.metrics_port and ports["metrics"] == args.metrics_port
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][section]), section
    matched = deployment["spec"]["selector"]["matchLabels"].items()
    assert matched <= deployment["spec"]["template"]["metadata"]["labels"].items()
    metrics = [s for s in built("Service") if s["spec"]["ports"][0]["targetPort"] == "metrics"]
    assert metrics and metrics[0]["spec"]["selector"].items() <= matched | (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_operator_pod_is_restricted_and_read_only() -> None:
    pod = the_one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "/tmp must be a writable emptyDir"


# -- the real API server --------------------------------------------------------------------


@pytest.mark.cluster
def test_manifests_accepted_by_api_server(
    kubectl: Kubectl, installed_crd: None, operator_namespace: str
) -> None:
    docs = list(kustomize_build())
    result = kubectl.dry_run(docs)
    assert result.returncode == 0, result.stderr
    assert result.warnings == [], result.warnings  # e.g. PodSecurity "restricted" violations
    assert _names(result.stdout) == {doc["metadata"]["name"] for doc in docs}


@pytest.mark.cluster
def test_namespaced_manifests_accepted_by_api_server(
    kubectl: Kubectl, installed_crd: None, operator_namespace: str,
    make_namespace: Callable[..., str],
) -> None:
    """manifests/namespaced/, its watched namespace swapped for a fresh one (a dry-run cannot
    create the namespace its Role goes into)."""
    docs = copy.deepcopy(list(kustomize_build(NAMESPACED)))
    (watched,) = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"} - {
        OPERATOR_NAMESPACE}
    fresh = make_namespace("watched", RESTRICTED)
    for doc in docs:
        meta = doc["metadata"]
        if meta.get("namespace") == watched:
            meta["namespace"] = fresh
        if doc["kind"] == "Namespace" and meta["name"] == watched:
            meta["name"] = fresh
    assert {d["kind"] for d in docs} >= {"Role", "RoleBinding", "ClusterRole", "Deployment"}
    result = kubectl.dry_run(docs)
    assert result.returncode == 0, result.stderr
    assert result.warnings == [], result.warnings
    assert _names(result.stdout) == {doc["metadata"]["name"] for doc in docs}


@pytest.mark.cluster
def test_dry_run_catches_broken_manifests(
    kubectl: Kubectl, installed_crd: None, operator_namespace: str
) -> None:
    """Negative control: the checks above do reject what they should."""
    deployment = copy.deepcopy(the_one("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    result = kubectl.dry_run([deployment])
    assert result.returncode != 0 and "imagePullPolicyy" in result.stderr

    privileged = copy.deepcopy(the_one("Deployment"))
    privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "privileged": True
    }
    result = kubectl.dry_run([privileged])
    assert result.returncode == 0
    assert any("PodSecurity" in w for w in result.warnings), result.stderr


def _sample_ids() -> list[str]:
    return [p.name for p in sample_files()]


def test_samples_exist() -> None:
    names = _sample_ids()
    assert any("minimal" in n for n in names) and any("full" in n for n in names), names


@pytest.mark.cluster
@pytest.mark.parametrize("sample", sample_files(), ids=_sample_ids())
def test_sample_accepted_by_api_server(
    kubectl: Kubectl, installed_crd: None, make_namespace: Callable[..., str], sample: Path
) -> None:
    docs = load_documents(sample)
    result = kubectl.dry_run(docs, make_namespace("sample"))
    assert result.returncode == 0, result.stderr
    # Shipped samples are written in the storage version: no deprecation warning on apply.
    assert docs[0]["apiVersion"] == V1, "samples are written in v1 (v1alpha1 is deprecated)"
    assert result.warnings == [], result.warnings
    assert _names(result.stdout) == {d["metadata"]["name"] for d in docs}


@pytest.mark.cluster
def test_invalid_sample_rejected_by_crd(
    kubectl: Kubectl, installed_crd: None, make_namespace: Callable[..., str]
) -> None:
    """Negative control: the CRD's schema and CEL rules are enforced by the dry-run."""
    full = next(p for p in sample_files() if "full" in p.name)
    body = load_documents(full)[0]
    body["spec"]["server"]["service"]["nodePort"]["port"] = 29999  # outside 30000-32767
    result = kubectl.dry_run([body], make_namespace("sample"))
    assert result.returncode != 0 and "nodePort" in result.stderr, result.stderr
    body = load_documents(full)[0]
    body["spec"]["workers"]["replicaz"] = 3
    result = kubectl.dry_run([body], make_namespace("sample"))
    assert result.returncode != 0 and "replicaz" in result.stderr, result.stderr


def _defaulted(kubectl: Kubectl, body: Obj, namespace: str) -> Obj:
    """The sample as the operator sees it: with the API server's defaults applied."""
    result = kubectl.run(
        "apply", "--dry-run=server", "-o", "json", "-n", namespace, "-f", "-",
        stdin=json.dumps(body),
    )
    defaulted: Obj = json.loads(result.stdout)
    return defaulted


@pytest.mark.cluster
@pytest.mark.parametrize("sample", sample_files(), ids=_sample_ids())
def test_rendered_children_accepted_by_api_server(
    kubectl: Kubectl, installed_crd: None, make_namespace: Callable[..., str], sample: Path
) -> None:
    """What the operator's pure builders render for each sample is valid, restricted-clean."""
    namespace = make_namespace("render", RESTRICTED)
    (body,) = load_documents(sample)
    cr = _defaulted(kubectl, body, namespace)
    spec = parse_spec((cr if cr["apiVersion"] == V1 else to_v1(cr))["spec"])  # the hub
    owner = Owner(cr["metadata"]["name"], namespace, str(uuid.uuid4()), cr["apiVersion"])
    external: dict[str, dict[str, str]] = {
        name: {"password": "x"} for name in external_secret_names(owner, spec)
    }
    desired = build_desired_state(owner, spec, ensure_credentials(spec, None), external)
    children: list[dict[str, Any]] = desired.children
    assert children, "the builders rendered nothing"
    result = kubectl.dry_run(children, namespace)
    assert result.returncode == 0, result.stderr
    assert result.warnings == [], result.warnings
    rendered = {(c["kind"], c["metadata"]["name"]) for c in children}
    assert len(result.stdout.split()) == len(rendered), result.stdout


def test_kind_config_maps_the_sample_node_ports() -> None:
    """manifests/kind/cluster.yaml: 1 control plane + 2 workers; host ports 30000/30001 reach
    the node ports the full sample asks for (API and MinIO console)."""
    config = load_documents(MANIFESTS / "kind" / "cluster.yaml")[0]
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert [node["role"] for node in config["nodes"]] == ["control-plane", "worker", "worker"]
    mappings = [m for node in config["nodes"] for m in node.get("extraPortMappings", [])]
    allowed = {"containerPort", "hostPort", "listenAddress", "protocol"}
    assert all(set(m) <= allowed for m in mappings), mappings
    ports = {m["hostPort"]: m["containerPort"] for m in mappings}
    full = load_documents(next(p for p in sample_files() if "full" in p.name))[0]["spec"]
    api = full["server"]["service"]["nodePort"]
    console = full["objectStorage"]["managed"]["console"]["nodePort"]
    assert api["enabled"] and console["enabled"]
    # 30002: a second service's API in the e2e backup test (tests/e2e/conftest.SPARE_PORT).
    assert ports == {30000: api["port"], 30001: console["port"], 30002: 30002}
