"""NetworkPolicies (builders/network.py): who may connect to what, read from the policies and
the pod labels the builders really render (a label selector evaluated here as the API does)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.unit.helpers import OWNER, by_name, desired
from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders.backup import backup_job, resolved
from thumbnail_operator.builders.common import Context

Obj = dict[str, Any]
POLICY = "NetworkPolicy"
EXTERNAL = {
    "postgresql": {"mode": "External", "external": {
        "host": "db.example", "secretRef": {"name": "db", "key": "password"}}},
    "redis": {"mode": "External", "external": {"host": "redis.example"}},
    "objectStorage": {"mode": "External", "external": {
        "endpoint": "s3.example:443", "secretRef": {"name": "s3"}}},
}


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics (an empty selector selects everything)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for req in selector.get("matchExpressions", []):
        value, op = labels.get(req["key"]), req["operator"]
        ok = {"In": value in req.get("values", []),
              "NotIn": value not in req.get("values", []),
              "Exists": req["key"] in labels,
              "DoesNotExist": req["key"] not in labels}[op]
        if not ok:
            return False
    return True


def policies(spec: Obj | None = None) -> dict[str, Obj]:
    return {name: o for (kind, name), o in by_name(desired(spec)).items() if kind == POLICY}


def pod_labels(spec: Obj | None = None) -> dict[str, dict[str, str]]:
    """The pod labels of every workload the operator runs for this spec, the backup Job's
    included (the backup controller builds it, not build_desired_state)."""
    found = {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"]
             for o in desired(spec).children
             if o["kind"] in ("Deployment", "StatefulSet", "Job")}
    ctx = Context(owner=OWNER, spec=parse_spec(spec or {}))
    job = backup_job(ctx, backup={"metadata": {"name": "nightly", "uid": "u"}},
                     destination=resolved(ctx, ctx.spec.backup.destination), retention=None)
    found["backup"] = job["spec"]["template"]["metadata"]["labels"]
    return found


def allowed(policy: Obj, labels: dict[str, str], port: int) -> bool:
    """Whether a pod with `labels` in the same namespace may open `port` on the policy's pods."""
    for rule in policy["spec"].get("ingress", []):
        ports = [p["port"] for p in rule.get("ports", [])]
        peers = rule.get("from")
        if ports and port not in ports:
            continue
        if peers is None or any(selects(p["podSelector"], labels)
                                for p in peers if "podSelector" in p):
            return True
    return False


def test_the_default_spec_has_a_policy_per_component() -> None:
    assert set(policies()) == {f"demo-{component}" for component in
                               ("server", "worker", "postgresql", "redis", "minio")}


@pytest.mark.parametrize(("store", "port", "clients"), [
    ("postgresql", c.POSTGRES_PORT, {"demo-server", "demo-worker", "backup"}),
    ("redis", c.REDIS_PORT, {"demo-server", "demo-worker"}),
    ("minio", c.MINIO_API_PORT, {"demo-server", "demo-worker", "demo-bucket-init", "backup"}),
])
def test_a_data_store_admits_exactly_the_pods_that_use_it(
    store: str, port: int, clients: set[str]
) -> None:
    policy = policies()[f"demo-{store}"]
    labels = pod_labels()
    admitted = {name.rsplit("-", 1)[0] if name.startswith("demo-bucket-init") else name
                for name, pod in labels.items() if allowed(policy, pod, port)}
    assert admitted == clients
    # The policy applies to the data store's own pods (and only them).
    assert {name for name, pod in labels.items()
            if selects(policy["spec"]["podSelector"], pod)} == {f"demo-{store}"}
    # Egress closed: a data store opens no connection.
    assert "Egress" in policy["spec"]["policyTypes"] and policy["spec"]["egress"] == []


def test_every_pod_waits_only_for_data_stores_that_admit_it() -> None:
    """A wait-for-X init container whose pod X's policy refuses would hold the pod forever
    (the backup Job once waited for Redis)."""
    ports = {"postgresql": c.POSTGRES_PORT, "redis": c.REDIS_PORT, "minio": c.MINIO_API_PORT}
    found = policies()
    ctx = Context(owner=OWNER, spec=parse_spec({}))
    backup = backup_job(ctx, backup={"metadata": {"name": "nightly", "uid": "u"}},
                        destination=resolved(ctx, ctx.spec.backup.destination), retention=None)
    workloads = [o for o in desired().children if o["kind"] in ("Deployment", "Job")
                 and o["metadata"]["name"] in ("demo-server", "demo-worker")] + [backup]
    waited = 0
    for workload in workloads:
        template = workload["spec"]["template"]
        for init in template["spec"].get("initContainers", []):
            store = init["name"].removeprefix("wait-for-")
            if store in ports:
                assert allowed(found[f"demo-{store}"], template["metadata"]["labels"],
                               ports[store]), (workload["metadata"]["name"], store)
                waited += 1
    assert waited == 3 + 3 + 2  # server and workers wait for all three, the backup for two


def test_pods_of_another_service_or_app_are_not_admitted() -> None:
    policy = policies()["demo-postgresql"]
    server = pod_labels()["demo-server"]
    other_instance = {**server, c.LABEL_INSTANCE: "shop"}
    other_app = {c.LABEL_COMPONENT: "server", "app": "something-else"}
    assert allowed(policy, server, c.POSTGRES_PORT)
    assert not allowed(policy, other_instance, c.POSTGRES_PORT)
    assert not allowed(policy, other_app, c.POSTGRES_PORT)
    # Own pods, wrong port: refused too.
    assert not allowed(policy, server, c.REDIS_PORT)


def test_the_api_is_open_to_anyone_by_default_and_to_the_peers_given() -> None:
    anyone = policies()["demo-server"]
    assert allowed(anyone, {"app": "browser"}, c.API_PORT)
    assert not allowed(anyone, {"app": "browser"}, 9999)
    peers = [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]
    restricted = policies({"networkPolicy": {"apiPeers": peers}})["demo-server"]
    (rule,) = restricted["spec"]["ingress"]
    assert rule["from"] == peers and rule["ports"] == [{"protocol": "TCP", "port": c.API_PORT}]


def test_workers_accept_only_their_health_port() -> None:
    policy = policies()["demo-worker"]
    assert allowed(policy, {}, c.WORKER_HEALTH_PORT)
    assert not allowed(policy, pod_labels()["demo-server"], 5000)


def test_the_minio_console_is_open_only_when_published_on_a_node_port() -> None:
    closed = policies()["demo-minio"]
    assert not allowed(closed, {"app": "browser"}, c.MINIO_CONSOLE_PORT)
    published = policies({"objectStorage": {"managed": {"console": {
        "nodePort": {"enabled": True}}}}})["demo-minio"]
    assert allowed(published, {"app": "browser"}, c.MINIO_CONSOLE_PORT)
    assert not allowed(published, {"app": "browser"}, c.MINIO_API_PORT)


def test_external_data_stores_get_no_policy() -> None:
    assert set(policies(EXTERNAL)) == {"demo-server", "demo-worker"}


def test_turned_off_there_are_none() -> None:
    assert policies({"networkPolicy": {"enabled": False}}) == {}
