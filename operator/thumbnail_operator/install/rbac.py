"""What the operator may do, written once: the rules of both installs are cut from here.

- cluster-wide (`ClusterRole` thumbnail-operator): `CLUSTER_RULES`, every namespace;
- namespaced: `WATCHED_RULES` in a `Role` per watched namespace, `WEBHOOK_RULES` in a `Role`
  in the operator's own namespace (the webhook's certificate Secret) and `CRD_RULES` in a
  small `ClusterRole` limited by name to this one CRD (its conversion `caBundle` is
  cluster-scoped).

The children's kinds come from the operator's own kind table (`kube.CHILD_KINDS`), so a new
child kind cannot be forgotten here. No nodes, namespaces, RBAC objects, wildcards, pod
writes, or `update` (server-side apply is `patch`).
"""

from __future__ import annotations

from thumbnail_operator import constants as c
from thumbnail_operator.install.yamltext import Rule
from thumbnail_operator.kube import CHILD_KINDS, EVENT, OPTIONAL_CHILD_KINDS, Kind
from thumbnail_operator.settings import OperatorSettings
from thumbnail_operator.webhook.certmanager import CRD_NAME

CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")
WEBHOOK_SECRET: str = OperatorSettings.model_fields["webhook_secret"].default


def _group(kind: Kind) -> str:
    return kind.api_version.rpartition("/")[0]


def _child_rules() -> tuple[Rule, ...]:
    by_group: dict[str, list[str]] = {}
    for kind in (*CHILD_KINDS, *OPTIONAL_CHILD_KINDS):
        by_group.setdefault(_group(kind), []).append(kind.plural)
    why = ("Children: watched (drift repair), server-side applied (patch; create when new),\n"
           "pruned when no longer wanted (delete). Secrets: the generated credentials, and reads\n"
           "of the user Secrets a spec references (their content feeds the config hash).\n"
           "PodMonitors and PrometheusRules only where the Prometheus Operator's CRDs exist.")
    return tuple(
        Rule(why if i == 0 else None, (group,), tuple(plurals), CHILD_VERBS)
        for i, (group, plurals) in enumerate(by_group.items())
    )


RESOURCE_RULES = (
    Rule("The custom resource: watched, never modified except its status.",
         (c.GROUP,), (c.PLURAL,), ("get", "list", "watch")),
    Rule(None, (c.GROUP,), (f"{c.PLURAL}/status",), ("get", "patch")),
    Rule("Backups: watched and run; scheduled ones created, pruned ones deleted (retention).",
         (c.GROUP,), (c.BACKUP_PLURAL,), ("get", "list", "watch", "create", "delete")),
    Rule(None, (c.GROUP,), (f"{c.BACKUP_PLURAL}/status",), ("get", "patch")),
)
READ_RULES = (
    Rule("Read-only, for status that says why a component is not ready: its pods\n"
         "(unschedulable, image pull, crash loop, OOMKilled), a failed Job's log tail, and the\n"
         "controllers' Events (e.g. a StatefulSet refused by a ResourceQuota). Never create,\n"
         "exec or delete pods.",
         ("",), ("pods",), ("get", "list", "watch")),
    Rule(None, ("",), ("pods/log",), ("get",)),
    Rule("Events: created about ThumbnailServices; listed to explain a stuck component.",
         (_group(EVENT),), (EVENT.plural,), ("create", "list")),
)
CA_BUNDLE_RULE = Rule(
    "The conversion webhook (docs/upgrading.md): publish its CA in this one CRD's caBundle.",
    ("apiextensions.k8s.io",), ("customresourcedefinitions",), ("get", "patch"), (CRD_NAME,))
TRIM_RULE = Rule(
    None, ("apiextensions.k8s.io",), ("customresourcedefinitions/status",), ("patch",),
    (CRD_NAME,))

CLUSTER_RULES: tuple[Rule, ...] = (
    *RESOURCE_RULES,
    *_child_rules(),
    Rule("The conversion webhook (docs/upgrading.md): publish its CA in this one CRD's caBundle,\n"
         "and trim its status.storedVersions after the stored-version migration.",
         CA_BUNDLE_RULE.groups, CA_BUNDLE_RULE.resources, CA_BUNDLE_RULE.verbs,
         CA_BUNDLE_RULE.names),
    TRIM_RULE,
    *READ_RULES,
    Rule("Only with --peering (several replicas): kopf's leader coordination.",
         ("kopf.dev",), ("clusterkopfpeerings",), ("get", "list", "watch", "patch")),
)
"""Every namespace: the ClusterRole of the cluster-wide install (and of operator/rbac.yaml)."""

WATCHED_RULES: tuple[Rule, ...] = (
    *RESOURCE_RULES,
    *_child_rules(),
    *READ_RULES,
    Rule("Only with --peering (several replicas): kopf's leader coordination, namespaced.",
         ("kopf.dev",), ("kopfpeerings",), ("get", "list", "watch", "patch")),
)
"""One watched namespace of the namespaced install (a Role there)."""

CRD_RULES: tuple[Rule, ...] = (
    Rule("The conversion webhook (docs/upgrading.md): publish its CA in this one CRD's caBundle\n"
         "(cluster-scoped, hence a ClusterRole, limited to this CRD by name). No\n"
         "status.storedVersions trim: a namespaced operator cannot see every ThumbnailService.",
         CA_BUNDLE_RULE.groups, CA_BUNDLE_RULE.resources, CA_BUNDLE_RULE.verbs,
         CA_BUNDLE_RULE.names),
)
"""The only cluster-scoped permission of the namespaced install."""

WEBHOOK_RULES: tuple[Rule, ...] = (
    Rule("The conversion webhook's certificate Secret: created on first start (a create\n"
         "cannot be limited by name), then read and renewed by name only.",
         ("",), ("secrets",), ("create",)),
    Rule(None, ("",), ("secrets",), ("get", "patch"), (WEBHOOK_SECRET,)),
)
"""The operator's own namespace in the namespaced install (a Role there)."""
