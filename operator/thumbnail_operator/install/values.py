"""The install's settings, written once: the Helm chart's values (values.yaml, its JSON schema)
and the kustomize manifests (the defaults, written out) both come from `VALUES`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thumbnail_operator.settings import OperatorSettings

Obj = dict[str, Any]
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_SETTINGS = OperatorSettings.model_fields


def _default(name: str) -> Any:
    return _SETTINGS[name].get_default(call_default_factory=True)


@dataclass(frozen=True)
class Value:
    path: str  # dotted, as in values.yaml
    default: Any
    help: str
    schema: Obj

    @property
    def ref(self) -> str:
        """The Helm expression of this value (usable inside `range`, hence `$`)."""
        return f"$.Values.{self.path}"


_RESOURCES = {"type": "object", "additionalProperties": True}
_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

VALUES: tuple[Value, ...] = (
    Value("watchNamespaces", [],
          "Namespaces the operator watches. Empty: every namespace, with a ClusterRole\n"
          "(the cluster-wide install). Listed: only these, with a Role and RoleBinding in each\n"
          "(they must exist) and a ClusterRole limited to the CRD (docs/deployment.md).",
          {"type": "array", "uniqueItems": True,
           "items": {"type": "string", "pattern": DNS_LABEL}}),
    Value("image.repository", "thumbnail-operator", "The operator image.",
          {"type": "string", "minLength": 1}),
    Value("image.tag", "latest", "", {"type": "string", "minLength": 1}),
    Value("image.pullPolicy", "IfNotPresent", "",
          {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]}),
    Value("imagePullSecrets", [], "e.g. [{name: my-registry}]",
          {"type": "array", "items": {"type": "object"}}),
    Value("replicas", 1,
          "One replica (strategy Recreate). More only with kopf peering: apply\n"
          "operator/kopf-peering.yaml and add --peering=thumbnail-operator to extraArgs.",
          {"type": "integer", "minimum": 0}),
    Value("logLevel", _default("log_level"), "",
          {"type": "string", "enum": ["DEBUG", "INFO", "WARNING", "ERROR"]}),
    Value("resyncSeconds", int(_default("resync_seconds")),
          "Revisit every ThumbnailService at least this often.",
          {"type": "number", "exclusiveMinimum": 0}),
    Value("extraArgs", [], "More thumbnail-operator flags (thumbnail-operator --help).",
          {"type": "array", "items": {"type": "string"}}),
    Value("resources", {"requests": {"cpu": "50m", "memory": "128Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"}},
          "", _RESOURCES),
    Value("podAnnotations", {}, "Added to the operator pod's annotations.", _MAP),
    Value("podLabels", {}, "Added to the operator pod's labels.", _MAP),
    Value("nodeSelector", {}, "", _MAP),
    Value("tolerations", [], "", {"type": "array", "items": {"type": "object"}}),
    Value("affinity", {}, "", {"type": "object"}),
    Value("priorityClassName", "", "", {"type": "string"}),
    Value("crds.create", True,
          "Install and upgrade the ThumbnailService CRD with the chart. It is kept on\n"
          "`helm uninstall` (helm.sh/resource-policy: keep): deleting it would delete every\n"
          "ThumbnailService and, through owner references, their data stores.",
          {"type": "boolean"}),
    Value("namespace.create", False,
          "Create the release namespace, labelled for Pod Security \"restricted\" (as\n"
          "manifests/ does). Off by default: `helm install --create-namespace` creates it\n"
          "without those labels.",
          {"type": "boolean"}),
)
BY_PATH = {v.path: v for v in VALUES}


def defaults() -> Obj:
    """values.yaml as data."""
    tree: Obj = {}
    for value in VALUES:
        *parents, leaf = value.path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value.default
    return tree


def schema() -> Obj:
    """values.schema.json: helm lint, template and install reject unknown keys and bad types."""
    root: Obj = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                 "additionalProperties": False,
                 "properties": {"global": {"type": "object"}}}
    for value in VALUES:
        *parents, leaf = value.path.split(".")
        node = root
        for part in parents:
            node = node["properties"].setdefault(
                part, {"type": "object", "additionalProperties": False, "properties": {}})
        node["properties"][leaf] = {**value.schema, **({"description": " ".join(
            value.help.split())} if value.help else {})}
    return root
