"""OpenAPI schema of `spec.monitoring` (builders/monitoring.py), the same in both versions."""

from __future__ import annotations

from thumbnail_operator.api.schema.openapi import boolean, obj
from thumbnail_operator.api.schema.scheduling import label_map
from thumbnail_operator.api.v1 import DEFAULTS

MONITORING = obj(
    "Prometheus Operator objects: PodMonitors of the API server and workers and a "
    "PrometheusRule with alerts, created when the cluster serves monitoring.coreos.com/v1.",
    {
        "enabled": boolean("Create them (where the cluster has the Prometheus Operator's CRDs; "
                           "without them the operator logs it once and creates none).",
                           default=DEFAULTS.monitoring.enabled),
        "labels": label_map("Labels put on the PodMonitors and the PrometheusRule, e.g. the "
                            "one a Prometheus' podMonitorSelector and ruleSelector match "
                            "(release: prometheus); the operator's own labels win on a clash.",
                            "monitoring.labels"),
    },
    default={},
)
