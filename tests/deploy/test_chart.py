"""The Helm chart (charts/thumbnail-operator, generated from the same source as manifests/):
`helm lint` passes, its default rendering *is* the kustomize install (cluster-wide, and
namespaced with the same watched namespaces), its values reach the objects, its schema rejects
bad values, and what `helm template` renders is accepted by the real API server (server-side
dry-run, strict field validation, no Pod Security warnings)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.support import (
    CHART,
    NAMESPACED,
    OPERATOR_NAMESPACE,
    Kubectl,
    Obj,
    helm,
    helm_template,
    kustomize_build,
)
from thumbnail_operator.install.files import WATCHED
from thumbnail_operator.settings import from_command_line

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}
# What Helm users expect on every object; the kustomize install has no Helm release.
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
               "app.kubernetes.io/version"}
HELM_ANNOTATIONS = {"helm.sh/resource-policy"}  # the CRD outlives `helm uninstall`

Key = tuple[str, str | None, str]


def _key(doc: Obj) -> Key:
    return doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]


def _without_helm(docs: list[Obj]) -> dict[Key, Obj]:
    out: dict[Key, Obj] = {}
    for doc in copy.deepcopy(docs):
        meta = doc["metadata"]
        meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items()
                          if k not in HELM_LABELS}
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k not in HELM_ANNOTATIONS}
        meta.pop("annotations", None)
        if annotations:
            meta["annotations"] = annotations
        out[_key(doc)] = doc
    return out


def _by_key(docs: tuple[Obj, ...] | list[Obj]) -> dict[Key, Obj]:
    return {_key(doc): doc for doc in docs}


def _deployment(docs: list[Obj]) -> Obj:
    (found,) = [d for d in docs if d["kind"] == "Deployment"]
    return found


def _assert_same(rendered: dict[Key, Obj], kustomized: dict[Key, Obj]) -> None:
    assert sorted(rendered, key=str) == sorted(kustomized, key=str)
    for key, doc in kustomized.items():
        assert rendered[key] == doc, key


# -- helm lint and the equality with kustomize ---------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [{}, {"watchNamespaces": ["team-a", "team-b"], "namespace": {"create": True}}],
    ids=["cluster-wide", "namespaced"],
)
def test_chart_lints(values: Obj) -> None:
    result = helm("lint", "--strict", str(CHART), "--namespace", OPERATOR_NAMESPACE,
                  values=values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


def test_default_values_render_the_cluster_wide_kustomize_install() -> None:
    """`helm install -n thumbnail-system` == `kubectl apply -k manifests/`, object for object
    (the Namespace is Helm's to create unless namespace.create is set)."""
    _assert_same(_without_helm(helm_template(OPERATOR_NAMESPACE, {"namespace": {"create": True}})),
                 _by_key(kustomize_build()))
    plain = _by_key(helm_template(OPERATOR_NAMESPACE))
    assert ("Namespace", None, OPERATOR_NAMESPACE) not in plain
    assert set(plain) == set(_by_key(kustomize_build())) - {("Namespace", None,
                                                              OPERATOR_NAMESPACE)}


def test_watch_namespaces_render_the_namespaced_kustomize_install() -> None:
    """watchNamespaces = manifests/namespaced/'s namespaces gives its objects, except the
    watched Namespace itself (a chart does not create the namespaces it is pointed at)."""
    rendered = _without_helm(helm_template(
        OPERATOR_NAMESPACE, {"namespace": {"create": True}, "watchNamespaces": list(WATCHED)}))
    kustomized = {k: v for k, v in _by_key(kustomize_build(NAMESPACED)).items()
                  if k[:2] != ("Namespace", None) or k[2] == OPERATOR_NAMESPACE}
    _assert_same(rendered, kustomized)


def test_values_reach_the_objects() -> None:
    values: dict[str, Any] = {
        "image": {"repository": "registry.example.com/t/thumbnail-operator", "tag": "1.2.3",
                  "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "pull"}],
        "replicas": 2,
        "logLevel": "DEBUG",
        "resyncSeconds": 30,
        "extraArgs": ["--workers=4"],
        "watchNamespaces": ["team-a", "team-b"],
        # Helm merges maps with the defaults: null removes a default (the CPU limit here).
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"},
                      "limits": {"cpu": None, "memory": "128Mi"}},
        "podAnnotations": {"example.com/a": "b"},
        "podLabels": {"team": "thumbs"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "priorityClassName": "system-cluster-critical",
        "crds": {"create": False},
    }
    docs = helm_template("ops", values)
    assert not [d for d in docs if d["kind"] in {"CustomResourceDefinition", "Namespace"}]
    deployment = _deployment(docs)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["metadata"]["namespace"] == "ops"
    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == "registry.example.com/t/thumbnail-operator:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {"requests": {"cpu": "10m", "memory": "64Mi"},
                                      "limits": {"memory": "128Mi"}}
    settings = from_command_line(container["args"])  # the operator's own CLI accepts them
    assert (settings.log_level, settings.resync_seconds, settings.workers) == ("DEBUG", 30, 4)
    assert settings.namespace == ["team-a", "team-b"]
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    template = deployment["spec"]["template"]["metadata"]
    assert template["annotations"]["example.com/a"] == "b"
    assert template["annotations"]["prometheus.io/port"] == "8080"
    assert template["labels"]["team"] == "thumbs"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["labels"].items()
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
             for d in docs if d["kind"] in {"Role", "RoleBinding", "ClusterRole",
                                           "ClusterRoleBinding"}}
    assert roles == {
        ("ClusterRole", None, "thumbnail-operator-crd"),
        ("ClusterRoleBinding", None, "thumbnail-operator-crd"),
        ("Role", "ops", "thumbnail-operator-webhook"),
        ("RoleBinding", "ops", "thumbnail-operator-webhook"),
        *{(kind, ns, "thumbnail-operator") for kind in ("Role", "RoleBinding")
          for ns in ("team-a", "team-b")},
    }
    for doc in docs:
        if doc["kind"] in {"RoleBinding", "ClusterRoleBinding"}:
            assert doc["subjects"] == [{"kind": "ServiceAccount", "name": "thumbnail-operator",
                                        "namespace": "ops"}]


def test_crd_webhook_points_at_the_release_namespace() -> None:
    crds = {d["metadata"]["name"]: d for d in helm_template("ops")
            if d["kind"] == "CustomResourceDefinition"}
    assert sorted(crds) == ["thumbnailbackups.thumbnails.platform.dev",
                            "thumbnailservices.thumbnails.platform.dev"]
    crd = crds["thumbnailservices.thumbnails.platform.dev"]
    service = crd["spec"]["conversion"]["webhook"]["clientConfig"]["service"]
    assert (service["namespace"], service["name"]) == ("ops", "thumbnail-operator-webhook")
    for kept in crds.values():  # `helm uninstall` must not delete every backup record
        assert kept["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize(
    "values,complaint",
    [
        ({"watchNamespaces": ["team-*"]}, "watchNamespaces"),
        ({"watchNamespaces": ["Team"]}, "watchNamespaces"),
        ({"logLevel": "LOUD"}, "logLevel"),
        ({"replicaCount": 2}, "replicaCount"),
        ({"image": {"tag": ""}}, "tag"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ],
    ids=["glob-namespace", "uppercase-namespace", "log-level", "unknown-key", "empty-tag",
         "pull-policy"],
)
def test_schema_rejects_bad_values(values: Obj, complaint: str) -> None:
    result = helm("template", "x", str(CHART), values=values)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


# -- the real API server ---------------------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_rendered_chart_accepted_by_api_server(
    kubectl: Kubectl, installed_crd: None, make_namespace: Callable[..., str], namespaced: bool
) -> None:
    release = make_namespace("helm", RESTRICTED)
    values: Obj = {}
    if namespaced:
        values["watchNamespaces"] = [make_namespace("watched", RESTRICTED) for _ in range(2)]
    docs = helm_template(release, values)
    kinds = {d["kind"] for d in docs}
    if namespaced:
        assert "Role" in kinds and "RoleBinding" in kinds
    else:
        assert {"ClusterRole", "ClusterRoleBinding"} <= kinds and "Role" not in kinds
    result = kubectl.dry_run(docs)
    assert result.returncode == 0, result.stderr
    assert result.warnings == [], result.warnings  # e.g. PodSecurity "restricted" violations
    accepted = {line.split("/", 1)[1] for line in result.stdout.split()}
    assert accepted == {d["metadata"]["name"] for d in docs}
