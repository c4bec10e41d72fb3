"""OpenAPI schema of `workers.autoscaling` and `status.autoscaling` (controller/autoscaling.py),
the same in both versions."""

from __future__ import annotations

from thumbnail_operator.api.schema.openapi import integer, obj, rule, string
from thumbnail_operator.api.v1 import Autoscaling

_D = Autoscaling.model_fields
MAX_REPLICAS = 1000  # as `replicas`

AUTOSCALING = obj(
    "Size the workers from the pending work instead of `replicas`: the operator weighs each "
    "waiting job by its cost (source megapixels x sizes, at the per-format render times the "
    "workers measured) and runs enough workers that a job waits at most targetQueueSeconds; "
    "none while nothing waits. Unset: `replicas` and `kubectl scale` set the size.",
    {
        "minReplicas": integer("Workers kept while idle (0: none; the first submission "
                               "starts one, its job waits meanwhile, nothing is lost).",
                               default=_D["min_replicas"].default, minimum=0,
                               maximum=MAX_REPLICAS),
        "maxReplicas": integer("Never more workers than this.", minimum=1,
                               maximum=MAX_REPLICAS),
        "targetQueueSeconds": integer("How long a job may wait for a worker.",
                                      default=_D["target_queue_seconds"].default, minimum=1,
                                      maximum=86_400),
        "scaleDownDelaySeconds": integer(
            "How long a lower size must be wanted before workers are removed (growing is "
            "never delayed).", default=_D["scale_down_delay_seconds"].default, minimum=0,
            maximum=86_400),
    },
    required=["maxReplicas"],
    rules=[rule("self.?minReplicas.orValue(0) <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas")],
)

# On the workers object: `kubectl scale` writes `replicas`, which the autoscaler would ignore.
FIXED_WHILE_AUTOSCALED = rule(
    "!has(self.autoscaling) || !has(oldSelf.autoscaling) || "
    "self.?replicas.orValue(0) == oldSelf.?replicas.orValue(0)",
    "replicas cannot change while autoscaling is set (the autoscaler sizes the workers): "
    "change autoscaling.minReplicas/maxReplicas, or remove autoscaling to size them by hand",
)

AUTOSCALING_STATUS = obj(
    "What the autoscaler decided last (spec workers.autoscaling).",
    {
        "replicas": integer("Workers it asked for.", minimum=0, maximum=MAX_REPLICAS),
        "recommendedReplicas": integer(
            "Workers the pending work needs now (the size follows after the scale-down "
            "delay when lower).", minimum=0, maximum=MAX_REPLICAS),
        "pendingJobs": integer("Jobs queued or processing.", minimum=0, maximum=2**62),
        "expectedWorkSeconds": {
            "type": "number", "minimum": 0,
            "description": "Worker-seconds the pending jobs are expected to take.",
        },
        "lastScaleTime": {"type": "string", "format": "date-time",
                          "description": "When it last changed the number of workers."},
        "message": string("Why this size.", max_length=1024),
    },
)
