"""The operator's install objects, written once for both outputs.

Each function builds one object for a `Target`: `Concrete` gives the values themselves (the
kustomize manifests, operator/rbac.yaml, the tests), `Helm` gives template expressions over
the chart's values (`values.VALUES`) where a user may change something. Everything else is
identical text in both, so the two installs cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator.install.values import BY_PATH
from thumbnail_operator.install.yamltext import (
    Block,
    Comment,
    Lines,
    Optional,
    Rule,
    RuleList,
    Tpl,
)

Obj = dict[Any, Any]  # keys may be markers (Comment, Lines)
NAME = "thumbnail-operator"
NAMESPACE = c.WEBHOOK_NAMESPACE  # thumbnail-system: the operator, its Services and Secret
METRICS_SERVICE = f"{NAME}-metrics"
SELECTOR = {c.LABEL_NAME: NAME, c.LABEL_COMPONENT: "operator"}
COMMON_LABELS = {c.LABEL_PART_OF: c.PART_OF}  # kustomize `labels:`; the chart writes them
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}
METRICS_PORT, LIVENESS_PORT = 8080, 8081


class Target:
    """How a setting is written: its default value (`Concrete`) or a Helm expression."""

    namespace: Any

    def text(self, template: str) -> Any:
        """`template` with `{value.path}` fields, e.g. "{image.repository}:{image.tag}"."""
        raise NotImplementedError

    def scalar(self, path: str) -> Any:
        raise NotImplementedError

    def block(self, path: str) -> Any:
        raise NotImplementedError

    def optional(self, obj: Obj, key: str, path: str, scalar: bool = False) -> None:
        """Set `obj[key]` to the value unless it is empty."""
        raise NotImplementedError

    def merge(self, path: str) -> Obj:
        """A map value's entries, to be merged into a mapping."""
        raise NotImplementedError

    def items(self, path: str) -> list[Any]:
        """A list value's items, to be appended to a list."""
        raise NotImplementedError

    def labels(self, labels: dict[str, str]) -> Obj:
        """An object's metadata.labels."""
        raise NotImplementedError


_FIELD = re.compile(r"\{([\w.]+)\}")


@dataclass(frozen=True)
class Concrete(Target):
    namespace: str = NAMESPACE

    def text(self, template: str) -> str:
        return _FIELD.sub(lambda m: str(BY_PATH[m[1]].default), template)

    def scalar(self, path: str) -> Any:
        return BY_PATH[path].default

    def block(self, path: str) -> Any:
        return BY_PATH[path].default

    def optional(self, obj: Obj, key: str, path: str, scalar: bool = False) -> None:
        if BY_PATH[path].default:
            obj[key] = BY_PATH[path].default

    def merge(self, path: str) -> Obj:
        return dict(BY_PATH[path].default)

    def items(self, path: str) -> list[Any]:
        return list(BY_PATH[path].default)

    def labels(self, labels: dict[str, str]) -> Obj:
        return dict(labels)


RELEASE_NAMESPACE = Tpl("{{ $.Release.Namespace }}")


@dataclass(frozen=True)
class Helm(Target):
    namespace: Tpl = RELEASE_NAMESPACE

    def text(self, template: str) -> Tpl:
        return Tpl('"' + _FIELD.sub(lambda m: f"{{{{ {BY_PATH[m[1]].ref} }}}}", template) + '"')

    def scalar(self, path: str) -> Tpl:
        return Tpl(f"{{{{ {BY_PATH[path].ref} }}}}")

    def block(self, path: str) -> Block:
        return Block(BY_PATH[path].ref)

    def optional(self, obj: Obj, key: str, path: str, scalar: bool = False) -> None:
        obj[key] = Optional(BY_PATH[path].ref, scalar)

    def merge(self, path: str) -> Obj:
        return {Lines((f"{{{{- with {BY_PATH[path].ref} }}}}",
                       "{{- toYaml . | nindent {indent} }}", "{{- end }}")): None}

    def items(self, path: str) -> list[Any]:
        return [Lines((f"{{{{- with {BY_PATH[path].ref} }}}}",
                       "{{- toYaml . | nindent {indent} }}", "{{- end }}"))]

    def labels(self, labels: dict[str, str]) -> Obj:
        return {**labels, **COMMON_LABELS,
                Lines(('{{- include "thumbnail-operator.labels" $ | nindent {indent} }}',)): None}


def _meta(t: Target, name: str, namespace: Any = None, **labels: str) -> Obj:
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = t.labels({c.LABEL_NAME: NAME, **labels})
    return meta


# -- the operator's namespace and identity -------------------------------------------------


def namespace(t: Target, name: Any = None, *, why: str = "") -> Obj:
    meta: Obj = {"name": t.namespace if name is None else name}
    labels = {c.LABEL_NAME: NAME}
    meta["labels"] = {**t.labels(labels), Comment(
        why or "The operator pod satisfies the \"restricted\" Pod Security Standard; "
        "enforce it."): None, **RESTRICTED}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def service_account(t: Target) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _meta(t, NAME, t.namespace, **{c.LABEL_COMPONENT: "operator"})}


def _subjects(t: Target) -> list[Obj]:
    return [{"kind": "ServiceAccount", "name": NAME, "namespace": t.namespace}]


def cluster_role(t: Target, name: str, rules: Sequence[Rule]) -> Obj:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": _meta(t, name, **{c.LABEL_COMPONENT: "operator"}),
            "rules": RuleList(tuple(rules))}


def cluster_role_binding(t: Target, name: str) -> Obj:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": _meta(t, name, **{c.LABEL_COMPONENT: "operator"}),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": _subjects(t)}


def role(t: Target, name: str, namespace: Any, rules: Sequence[Rule]) -> Obj:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": _meta(t, name, namespace, **{c.LABEL_COMPONENT: "operator"}),
            "rules": RuleList(tuple(rules))}


def role_binding(t: Target, name: str, namespace: Any) -> Obj:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": _meta(t, name, namespace, **{c.LABEL_COMPONENT: "operator"}),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": _subjects(t)}


# -- the operator Deployment and its Services ------------------------------------------------


def _probe(period: int, failures: int) -> Obj:
    return {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": period,
            "timeoutSeconds": 5, "failureThreshold": failures}


def namespace_args(t: Target, watched: Sequence[str] | None) -> list[Any]:
    """`--namespace` per watched namespace: the given list, or the chart's `watchNamespaces`."""
    if watched is None:
        return [Lines((f"{{{{- range $ns := {BY_PATH['watchNamespaces'].ref} }}}}",
                       "- --namespace={{ $ns }}", "{{- end }}"))]
    return [f"--namespace={ns}" for ns in watched]


def deployment(t: Target, watched: Sequence[str] | None = ()) -> Obj:
    """The operator: restricted Pod Security, read-only root with a /tmp emptyDir."""
    security = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001}
    pod_labels = {**SELECTOR, c.LABEL_PART_OF: c.PART_OF, **t.merge("podLabels")}
    container: Obj = {
        "name": "operator",
        "image": t.text("{image.repository}:{image.tag}"),
        "imagePullPolicy": t.scalar("image.pullPolicy"),
        Comment("ENTRYPOINT is `thumbnail-operator`; these are its flags (see `--help`)."): None,
        "args": [
            f"--metrics-port={METRICS_PORT}",
            f"--liveness-port={LIVENESS_PORT}",
            t.text("--resync-seconds={resyncSeconds}"),
            t.text("--log-level={logLevel}"),
            Comment("The ThumbnailService conversion webhook (v1alpha1 <-> v1), behind the\n"
                    f"{c.WEBHOOK_SERVICE} Service; certificate in a Secret of this namespace."),
            f"--webhook-port={c.WEBHOOK_PORT}",
            *t.items("extraArgs"),
            *namespace_args(t, watched),
        ],
        "env": [{"name": "POD_NAMESPACE",
                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "ports": [
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": LIVENESS_PORT, "protocol": "TCP"},
            {"name": "webhook", "containerPort": c.WEBHOOK_PORT, "protocol": "TCP"},
        ],
        Comment("kopf's liveness endpoint answers 200 once the operator is up and its probes "
                "pass."): None,
        "startupProbe": _probe(2, 60),
        "livenessProbe": _probe(20, 3),
        "readinessProbe": _probe(10, 3),
        "resources": t.block("resources"),
        "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, **security,
            "privileged": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod: Obj = {
        "serviceAccountName": NAME,
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
    }
    t.optional(pod, "priorityClassName", "priorityClassName", scalar=True)
    t.optional(pod, "imagePullSecrets", "imagePullSecrets")
    pod["securityContext"] = {**security, "fsGroup": 10001,
                              "seccompProfile": {"type": "RuntimeDefault"}}
    pod["containers"] = [container]
    t.optional(pod, "nodeSelector", "nodeSelector")
    t.optional(pod, "tolerations", "tolerations")
    t.optional(pod, "affinity", "affinity")
    pod["volumes"] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(t, NAME, t.namespace, **{c.LABEL_COMPONENT: "operator"}),
        "spec": {
            "replicas": t.scalar("replicas"),
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(SELECTOR)},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "kubectl.kubernetes.io/default-container": "operator",
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                        **t.merge("podAnnotations"),
                    },
                },
                "spec": pod,
            },
        },
    }


def metrics_service(t: Target) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(t, METRICS_SERVICE, t.namespace, **{c.LABEL_COMPONENT: "operator"}),
        "spec": {"type": "ClusterIP", "selector": dict(SELECTOR),
                 "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics",
                            "protocol": "TCP"}]},
    }


def webhook_service(t: Target) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(t, c.WEBHOOK_SERVICE, t.namespace,
                          **{c.LABEL_COMPONENT: "operator"}),
        "spec": {"selector": dict(SELECTOR),
                 "ports": [{"name": "webhook", "port": c.WEBHOOK_PORT, "targetPort": "webhook",
                            "protocol": "TCP"}]},
    }


# -- the CRD -----------------------------------------------------------------------------------


def crd_for_chart(crd: Obj) -> Obj:
    """The CRD from crds/ as the chart installs it: its conversion webhook's Service in the
    release namespace, kept on uninstall, with the chart's labels."""
    crd = dict(crd)
    meta = dict(crd["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), "helm.sh/resource-policy": "keep"}
    meta["labels"] = Helm().labels(dict(meta.get("labels") or {}))
    crd["metadata"] = meta
    conversion = (crd.get("spec") or {}).get("conversion") or {}
    service = ((conversion.get("webhook") or {}).get("clientConfig") or {}).get("service")
    if service is not None:
        spec = dict(crd["spec"])
        webhook = dict(conversion["webhook"])
        webhook["clientConfig"] = {**webhook["clientConfig"],
                                   "service": {**service, "namespace": Helm().namespace}}
        spec["conversion"] = {**conversion, "webhook": webhook}
        crd["spec"] = spec
    return crd
