"""OpenAPI schema of a component's `scheduling`: the pod spec's placement fields.

`nodeSelector`, `tolerations`, `topologySpreadConstraints` and `priorityClassName` are
small and fully typed here, with the checks the API server makes of a pod (as CEL rules
with a message that says what to fix), so a ThumbnailService the pods would be refused for
is refused itself. `affinity` names its three kinds (`nodeAffinity`, `podAffinity`,
`podAntiAffinity`) and keeps their content as given (`x-kubernetes-preserve-unknown-fields`):
the API server checks it when the operator applies the workload (with strict field
validation, so a misspelt field is an error too), and a refusal shows in the resource's
status.

Both API versions use the same schema (v1 copies v1alpha1's subtrees), so they cannot drift.
"""

from __future__ import annotations

import copy

from thumbnail_operator import constants as c
from thumbnail_operator.api.schema.openapi import (
    DNS_SUBDOMAIN,
    LABEL_KEY,
    LABEL_VALUE,
    Schema,
    array,
    integer,
    obj,
    rule,
    string,
    string_map,
)
from thumbnail_operator.api.v1 import Scheduling

INT32_MAX = 2**31 - 1
# (Messages are short: the schema is repeated for five components in two versions.)
LABEL_KEY_RULE = "not a label key such as kubernetes.io/hostname or disktype"
LABEL_VALUE_RULE = "not a label value (at most 63 letters, digits, '-', '_', '.')"
# The labels every component's selector has (builders/common.py, Context.selector): a spread
# constraint without labelSelector gets the component's selector.
SELECTOR_KEYS = (c.LABEL_NAME, c.LABEL_INSTANCE, c.LABEL_COMPONENT)


def _label_key(description: str, what: str, *, allow_empty: bool = False) -> Schema:
    matches = f"self.matches('{LABEL_KEY}')"
    return string(description, max_length=317, min_length=None if allow_empty else 1,
                  rules=[rule(f"self == '' || {matches}" if allow_empty else matches,
                              f"{what}: {LABEL_KEY_RULE}")])


def _label_value(description: str, what: str) -> Schema:
    return string(description, max_length=63,
                  rules=[rule(f"self.matches('{LABEL_VALUE}')", f"{what}: {LABEL_VALUE_RULE}")])


def label_map(description: str, what: str) -> Schema:
    schema = string_map(description, _label_value("Label value.", f"{what} values"),
                        max_properties=32)
    schema["x-kubernetes-validations"] = [
        rule(f"self.all(k, k.matches('{LABEL_KEY}'))", f"{what} keys: {LABEL_KEY_RULE}"),
    ]
    return schema


def label_selector(description: str) -> Schema:
    """A metav1.LabelSelector (also a NetworkPolicy peer's, api/schema/network.py)."""
    requirement = obj(
        "A label requirement.",
        {
            "key": _label_key("Label key.", "matchExpressions key"),
            "operator": string("In, NotIn, Exists or DoesNotExist.",
                               enum=["In", "NotIn", "Exists", "DoesNotExist"]),
            "values": array("Values (In, NotIn).",
                            _label_value("Label value.", "matchExpressions values"),
                            max_items=64),
        },
        required=["key", "operator"],
        rules=[rule("self.operator in ['In', 'NotIn'] ? size(self.?values.orValue([])) > 0 : "
                    "size(self.?values.orValue([])) == 0",
                    "matchExpressions: In and NotIn need values, Exists and DoesNotExist none")],
    )
    return obj(
        description,
        {
            "matchLabels": label_map("Labels with these values.", "matchLabels"),
            "matchExpressions": array("Label requirements.", requirement, max_items=16),
        },
    )


def _policy(description: str) -> Schema:
    return string(description, enum=["Honor", "Ignore"])


_SPREAD_RULES = [
    rule("!has(self.minDomains) || self.whenUnsatisfiable == 'DoNotSchedule'",
         "minDomains needs whenUnsatisfiable DoNotSchedule"),
    rule("!has(self.matchLabelKeys) || !has(self.labelSelector) || self.matchLabelKeys.all(k, "
         "!(has(self.labelSelector.matchLabels) && k in self.labelSelector.matchLabels) && "
         "!(has(self.labelSelector.matchExpressions) && "
         "self.labelSelector.matchExpressions.exists(e, e.key == k)))",
         "a key of matchLabelKeys must not be in labelSelector too"),
    rule("has(self.labelSelector) || !has(self.matchLabelKeys) || self.matchLabelKeys.all(k, "
         "!(k in [" + ", ".join(f"'{key}'" for key in SELECTOR_KEYS) + "]))",
         "without labelSelector (the component's selector: app.kubernetes.io/name, "
         "instance, component), matchLabelKeys must not name those keys"),
]

_SPREAD_ITEM = obj(
    "A core/v1 TopologySpreadConstraint.",
    {
        "maxSkew": integer("Most matching pods one domain may have over the emptiest.",
                           minimum=1, maximum=INT32_MAX),
        "topologyKey": _label_key("Node label of the domains, e.g. kubernetes.io/hostname.",
                                  "topologyKey"),
        "whenUnsatisfiable": string("DoNotSchedule (hard) or ScheduleAnyway (soft).",
                                    enum=["DoNotSchedule", "ScheduleAnyway"]),
        "labelSelector": label_selector(
            "Pods counted; unset: this component's pods (a metav1.LabelSelector)."),
        "minDomains": integer("Least eligible domains (DoNotSchedule only).", minimum=1,
                              maximum=INT32_MAX),
        "matchLabelKeys": array("Pod label keys added to the selector with the pod's values, "
                                "e.g. pod-template-hash.",
                                _label_key("Label key.", "matchLabelKeys"), max_items=16,
                                list_type="set"),
        "nodeAffinityPolicy": _policy("Honor (default) or Ignore the pod's node affinity."),
        "nodeTaintsPolicy": _policy("Honor or Ignore (default) node taints."),
    },
    required=["maxSkew", "topologyKey", "whenUnsatisfiable"],
    rules=_SPREAD_RULES,
)

_TOLERATION = obj(
    "A core/v1 Toleration.",
    {
        "key": _label_key("Taint key; empty (operator Exists): every taint.", "tolerations key",
                          allow_empty=True),
        "operator": string("Equal (default) or Exists (any value).", enum=["Equal", "Exists"]),
        "value": _label_value("Taint value (operator Equal).", "tolerations value"),
        "effect": string("Taint effect; unset: every effect.",
                         enum=["NoSchedule", "PreferNoSchedule", "NoExecute"]),
        "tolerationSeconds": integer("How long a NoExecute taint is tolerated (unset: always).",
                                     minimum=0, maximum=INT32_MAX),
    },
    rules=[
        rule("self.?operator.orValue('Equal') != 'Exists' || self.?value.orValue('') == ''",
             "a toleration with operator Exists must have no value"),
        rule("self.?key.orValue('') != '' || self.?operator.orValue('Equal') == 'Exists'",
             "a toleration without key must have operator Exists"),
        rule("!has(self.tolerationSeconds) || self.?effect.orValue('') == 'NoExecute'",
             "tolerationSeconds needs effect NoExecute"),
    ],
)

# -- affinity: its three kinds, each kept as given -------------------------------------------
# The whole Kubernetes Affinity schema, five times in two versions, would double the CRD (it
# must stay under the 256 KiB that `kubectl apply` can record). Its content is checked by
# the API server when the operator applies the workload: a refusal shows in status.


def _kept(kind: str) -> Schema:
    return {"type": "object", "description": f"A core/v1 {kind}, kept as given (the API "
            "server checks it when the workload is applied).",
            "x-kubernetes-preserve-unknown-fields": True}


_AFFINITY = obj(
    "A core/v1 Affinity.",
    {
        "nodeAffinity": _kept("NodeAffinity"),
        "podAffinity": _kept("PodAffinity"),
        "podAntiAffinity": _kept("PodAntiAffinity"),
    },
)


def scheduling(what: str, default: Scheduling) -> Schema:
    """The `scheduling` group of one component (`what`: its pods, for the descriptions)."""
    spread_default = [copy.deepcopy(item) for item in default.topology_spread_constraints]
    spread_description = f"How {what} spread across nodes or zones."
    if spread_default:
        spread_description += " Unset: evenly over nodes, softly; [] for none."
    spread = {
        **array(spread_description, copy.deepcopy(_SPREAD_ITEM), max_items=8,
                default=spread_default or None, list_type="map"),
        "x-kubernetes-list-map-keys": ["topologyKey", "whenUnsatisfiable"],
    }
    return obj(
        f"Where {what} run (the pod spec's fields of the same names).",
        {
            "nodeSelector": label_map("Node labels the node must have.", "nodeSelector"),
            "tolerations": array("Taints tolerated.", copy.deepcopy(_TOLERATION),
                                 max_items=32),
            "affinity": copy.deepcopy(_AFFINITY),
            "topologySpreadConstraints": spread,
            "priorityClassName": string(
                "An existing PriorityClass.", min_length=1, max_length=253,
                rules=[rule(f"self.matches('{DNS_SUBDOMAIN}')",
                            "priorityClassName must be a PriorityClass name (lowercase "
                            "letters, digits, '-', '.')")]),
        },
        default={},
    )
