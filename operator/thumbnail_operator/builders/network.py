"""NetworkPolicies: the data stores talk only to this service's own pods.

Without them any pod of the cluster can connect to PostgreSQL, Redis and MinIO, and only
their passwords stand in the way. With them (`spec.networkPolicy.enabled`, the default):

- each managed data store accepts connections on its own port only from the pods of this
  ThumbnailService that use it (the table below) and opens none itself (egress closed: a
  compromised data store cannot reach anything);
- the API server accepts connections on its API port from `spec.networkPolicy.apiPeers`
  (empty: from anyone, as a NodePort or an Ingress needs), nothing else;
- the workers accept connections on their health port only (probes, metrics scrapes).

Kubelet probes come from the node, which NetworkPolicy implementations let through; `kubectl
port-forward` and `exec` do not use the pod network and keep working. A data store that is
external (`mode: external`) is not ours to protect: no policy.
"""

from __future__ import annotations

from thumbnail_operator import constants as c
from thumbnail_operator.builders.common import Context, Obj

# Which of this service's pods connect to each data store (their component labels): the
# policies admit exactly these, and a pod waits (init containers, builders/app.py) for
# exactly the stores it is listed for. The migrations and the restore are init containers
# of the server pods; the backup Job's pods are labelled `backup`, the bucket-init Job's
# `bucket-init`.
CLIENTS: dict[str, tuple[str, ...]] = {
    "postgresql": ("server", "worker", "backup"),
    "redis": ("server", "worker"),
    "minio": ("server", "worker", "bucket-init", "backup"),
}


def network_policies(ctx: Context) -> list[Obj]:
    """Every NetworkPolicy of the service (none when turned off)."""
    if not ctx.spec.network_policy.enabled:
        return []
    policies = [server_policy(ctx), worker_policy(ctx)]
    if ctx.spec.postgresql.is_managed:
        policies.append(data_store_policy(ctx, "postgresql", c.POSTGRES_PORT))
    if ctx.spec.redis.is_managed:
        policies.append(data_store_policy(ctx, "redis", c.REDIS_PORT))
    if ctx.spec.object_storage.is_managed:
        console: list[Obj] = []
        if ctx.spec.object_storage.managed.console.node_port.enabled:
            # The console is published on a node port for people's browsers: from anyone.
            console = [{"ports": [_tcp(c.MINIO_CONSOLE_PORT)]}]
        policies.append(data_store_policy(ctx, "minio", c.MINIO_API_PORT, console))
    return policies


def data_store_policy(ctx: Context, component: str, port: int,
                      extra_ingress: list[Obj] | None = None) -> Obj:
    own_pods = {
        "matchLabels": {c.LABEL_NAME: c.APP_NAME, c.LABEL_INSTANCE: ctx.owner.name},
        "matchExpressions": [{"key": c.LABEL_COMPONENT, "operator": "In",
                              "values": list(CLIENTS[component])}],
    }
    return _policy(ctx, component, {
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": own_pods}], "ports": [_tcp(port)]},
                    *(extra_ingress or [])],
        "egress": [],
    })


def server_policy(ctx: Context) -> Obj:
    rule: Obj = {"ports": [_tcp(c.API_PORT)]}
    if ctx.spec.network_policy.api_peers:
        rule["from"] = [dict(peer) for peer in ctx.spec.network_policy.api_peers]
    return _policy(ctx, "server", {"policyTypes": ["Ingress"], "ingress": [rule]})


def worker_policy(ctx: Context) -> Obj:
    return _policy(ctx, "worker", {
        "policyTypes": ["Ingress"],
        "ingress": [{"ports": [_tcp(c.WORKER_HEALTH_PORT)]}],
    })


def _policy(ctx: Context, component: str, rules: Obj) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.metadata(ctx.names.of(component), component),
        "spec": {"podSelector": {"matchLabels": ctx.selector(component)}, **rules},
    }


def _tcp(port: int) -> Obj:
    return {"protocol": "TCP", "port": port}
