"""Where a component's pods run: its `scheduling` as the pod spec's placement fields.

Each workload's pod template carries only its own component's settings, and nothing of them
enters the config hash, so a change rolls that one workload and nothing else.
"""

from __future__ import annotations

import copy

from thumbnail_operator.api.v1 import Scheduling
from thumbnail_operator.builders.common import Context, Obj


def placement(ctx: Context, component: str, scheduling: Scheduling) -> Obj:
    """The pod spec fields for `scheduling` (only those that are set).

    A topology spread constraint without `labelSelector` would count no pods at all; it
    counts this component's pods (its Deployment's or StatefulSet's selector) instead."""
    fields: Obj = {}
    if scheduling.node_selector:
        fields["nodeSelector"] = dict(scheduling.node_selector)
    if scheduling.tolerations:
        fields["tolerations"] = copy.deepcopy(list(scheduling.tolerations))
    if scheduling.affinity:
        fields["affinity"] = copy.deepcopy(scheduling.affinity)
    if scheduling.topology_spread_constraints:
        fields["topologySpreadConstraints"] = [
            {**copy.deepcopy(constraint),
             "labelSelector": copy.deepcopy(constraint.get("labelSelector"))
             or {"matchLabels": ctx.selector(component)}}
            for constraint in scheduling.topology_spread_constraints
        ]
    if scheduling.priority_class_name:
        fields["priorityClassName"] = scheduling.priority_class_name
    return fields
