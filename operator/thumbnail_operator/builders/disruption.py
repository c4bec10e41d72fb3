"""PodDisruptionBudgets of the server and the workers: voluntary evictions (a node drain, a
cluster autoscaler scale-down) take at most one of their pods at a time.

Only where a budget protects something: a Deployment with at least two replicas, whose other
pods keep serving while one is evicted and rescheduled. With one replica a budget could only
refuse every eviction (blocking the drain for good) or allow it (protecting nothing), so
there is none - and none for the single-pod data stores (PostgreSQL, MinIO StatefulSets and
the Redis Deployment) for the same reason. A budget that is no longer wanted (scaled below
two) is pruned by the reconciler like any other child. Autoscaled workers have one whenever
they may grow to two: created and pruned as their number moves, it would flap with the load.
"""

from __future__ import annotations

from thumbnail_operator.builders.common import Context, Obj

# The smallest replica count a budget protects.
MIN_REPLICAS = 2
# One pod at a time, whatever the replica count: a drain goes on as soon as the evicted
# pod's replacement is ready elsewhere, and at most one pod's share of the capacity is
# missing meanwhile.
MAX_UNAVAILABLE = 1


def pod_disruption_budget(ctx: Context, *, name: str, component: str, replicas: int) -> Obj | None:
    """The budget of one Deployment's pods, or None when it would protect nothing."""
    if replicas < MIN_REPLICAS:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.metadata(name, component),
        "spec": {
            "maxUnavailable": MAX_UNAVAILABLE,
            "selector": {"matchLabels": ctx.selector(component)},
            # A pod that is not ready (crash loop, stuck rollout) serves nothing: evicting it
            # costs nothing, and counting it would block every drain until it recovers.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def server_budget(ctx: Context) -> Obj | None:
    return pod_disruption_budget(
        ctx, name=ctx.names.server, component="server", replicas=ctx.spec.server.replicas
    )


def worker_budget(ctx: Context) -> Obj | None:
    workers = ctx.spec.workers
    most = workers.replicas if workers.autoscaling is None else workers.autoscaling.max_replicas
    return pod_disruption_budget(ctx, name=ctx.names.worker, component="worker", replicas=most)
