"""Issue 12 on the kwok control plane, the operator in-process as its own ServiceAccount:
credentials are never replaced behind the user's back, drift that matters converges
(hand-set env, edited labels), and status says why a component is stuck, with Warning
Events only for real problems."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from tests.operator.support import condition, sample, wait_for, wait_ready
from thumbnail_operator import constants as c
from thumbnail_operator.kube import (
    DEPLOYMENT,
    EVENT,
    SECRET,
    SERVICE,
    STATEFUL_SET,
    THUMBNAIL_SERVICE,
    THUMBNAIL_SERVICE_V1ALPHA1,
    KubeClient,
)

pytestmark = pytest.mark.cluster

NO_PERSISTENCE = {"enabled": False}
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def create(admin: KubeClient, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = sample(name, persistence=NO_PERSISTENCE, **spec)
    body["metadata"]["namespace"] = namespace
    admin.request("POST", THUMBNAIL_SERVICE_V1ALPHA1.path(namespace), body=body)
    return wait_ready(admin, namespace, name, timeout=90)


def get_tns(admin: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    """In v1, the version this issue's fields are named in."""
    return admin.get(THUMBNAIL_SERVICE, namespace, name)


def patch_tns(admin: KubeClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    admin.request("PATCH", THUMBNAIL_SERVICE.path(namespace, name), body={"spec": spec},
                  content_type=MERGE_PATCH)


def secret_data(admin: KubeClient, namespace: str, name: str) -> dict[str, str] | None:
    secret = admin.get(SECRET, namespace, name)
    return dict(secret["data"]) if secret else None


def template_annotation(admin: KubeClient, kind: Any, namespace: str, name: str,
                        key: str) -> str:
    obj = admin.get(kind, namespace, name)
    assert obj is not None
    return str(obj["spec"]["template"]["metadata"].get("annotations", {}).get(key, ""))


def operator_events(admin: KubeClient, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = admin.request("GET", EVENT.path(namespace))["items"]
    return [e for e in items if e.get("reportingComponent") == c.FIELD_MANAGER]


def test_deleted_credentials_are_restored_not_regenerated(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    create(admin, namespace, "keys")
    before = secret_data(admin, namespace, "keys-credentials")
    server_hash = template_annotation(admin, DEPLOYMENT, namespace, "keys-server",
                                      c.CONFIG_HASH_ANNOTATION)
    admin.delete(SECRET, namespace, "keys-credentials")
    restored = wait_for(lambda: secret_data(admin, namespace, "keys-credentials"), timeout=10,
                        what="the credentials Secret back")
    assert restored == before
    assert template_annotation(admin, DEPLOYMENT, namespace, "keys-server",
                               c.CONFIG_HASH_ANNOTATION) == server_hash  # nothing rolls

    # Both gone: nothing new is invented; status says what to do.
    for name in ("keys-credentials", "keys-credentials-copy"):
        admin.delete(SECRET, namespace, name)
    degraded = wait_for(
        lambda: (d := condition(get_tns(admin, namespace, "keys"), "Degraded"))
        and d["status"] == "True" and d, timeout=15, what="Degraded for lost credentials")
    assert "regenerate-credentials=true" in degraded["message"], degraded
    time.sleep(2)
    assert admin.get(SECRET, namespace, "keys-credentials") is None

    admin.request("PATCH", THUMBNAIL_SERVICE.path(namespace, "keys"), content_type=MERGE_PATCH,
                  body={"metadata": {"annotations": {
                      f"{c.GROUP}/regenerate-credentials": "true"}}})
    wait_ready(admin, namespace, "keys", timeout=90)
    fresh = secret_data(admin, namespace, "keys-credentials")
    assert before and fresh and fresh["THUMBNAIL_API_KEYS"] != before["THUMBNAIL_API_KEYS"]


def test_rotating_the_redis_password_rolls_redis_too(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    create(admin, namespace, "rot")
    stores = {(DEPLOYMENT, "rot-redis"), (STATEFUL_SET, "rot-postgresql"),
              (STATEFUL_SET, "rot-minio")}

    def hashes() -> dict[str, str]:
        return {name: template_annotation(admin, kind, namespace, name,
                                          c.CREDENTIALS_HASH_ANNOTATION)
                for kind, name in stores}

    before = hashes()
    assert all(before.values()), before
    new = base64.b64encode(b"rotated-redis-password").decode()
    admin.request("PATCH", SECRET.path(namespace, "rot-credentials"), content_type=MERGE_PATCH,
                  body={"data": {"THUMBNAIL_REDIS_PASSWORD": new}})
    wait_for(lambda: hashes()["rot-redis"] != before["rot-redis"],
             timeout=10, what="the Redis pod template to change")
    after = hashes()
    assert {k for k in after if after[k] != before[k]} == {"rot-redis"}
    assert secret_data(admin, namespace, "rot-credentials-copy")[  # type: ignore[index]
        "THUMBNAIL_REDIS_PASSWORD"] == new


def test_hand_set_env_and_edited_labels_are_repaired_at_once(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    create(admin, namespace, "drift")
    # What `kubectl set env deploy/drift-server THUMBNAIL_AUTH_ENABLED=false` sends.
    entry = {"name": "THUMBNAIL_AUTH_ENABLED", "value": "false"}
    server = admin.get(DEPLOYMENT, namespace, "drift-server")
    assert server is not None
    env = server["spec"]["template"]["spec"]["containers"][0].get("env")
    admin.request("PATCH", DEPLOYMENT.path(namespace, "drift-server"), content_type=JSON_PATCH,
                  body=[{"op": "add", "path": "/spec/template/spec/containers/0/env/-",
                         "value": entry} if env else
                        {"op": "add", "path": "/spec/template/spec/containers/0/env",
                         "value": [entry]}])

    def env_names() -> set[str]:
        body = admin.get(DEPLOYMENT, namespace, "drift-server")
        assert body is not None
        return {e["name"] for e in body["spec"]["template"]["spec"]["containers"][0]
                .get("env", [])}

    started = time.monotonic()
    wait_for(lambda: "THUMBNAIL_AUTH_ENABLED" not in env_names(), timeout=10,
             what="the hand-set env var removed", interval=0.2)
    assert time.monotonic() - started < 5

    admin.request("PATCH", SERVICE.path(namespace, "drift-redis"), content_type=JSON_PATCH,
                  body=[{"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1managed-by"}])
    started = time.monotonic()
    wait_for(lambda: admin.get(SERVICE, namespace, "drift-redis")["metadata"][  # type: ignore[index]
        "labels"].get(c.LABEL_MANAGED_BY) == c.FIELD_MANAGER, timeout=10,
        what="the label restored", interval=0.2)
    assert time.monotonic() - started < 5  # the watch, not the resync

    def both_repairs() -> list[str] | None:
        # Events are recorded in the background: the repair can land before its Event.
        messages = [e["message"] for e in operator_events(admin, namespace)
                    if e["reason"] == "Repaired"]
        env = any("Deployment/drift-server" in m and "THUMBNAIL_AUTH_ENABLED" in m
                  for m in messages)
        label = any("Service/drift-redis" in m and "managed-by" in m for m in messages)
        return messages if env and label else None

    wait_for(both_repairs, timeout=10, what="a Repaired Event for each change", interval=0.2)
    assert not [e for e in operator_events(admin, namespace) if e["reason"] == "Adopted"]


def test_unschedulable_and_quota_are_named_in_status(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    create(admin, namespace, "why")
    routine = [e for e in operator_events(admin, namespace) if e["type"] == "Warning"]
    assert routine == []  # creating and becoming ready is routine

    # Workers asking for more CPU than any node has: the scheduler's message in status.
    big = {"requests": {"cpu": "500", "memory": "256Mi"}, "limits": {"cpu": "500",
                                                                     "memory": "512Mi"}}
    patch_tns(admin, namespace, "why", {"workers": {"resources": big}})
    degraded = wait_for(
        lambda: (d := condition(get_tns(admin, namespace, "why"), "Degraded"))
        and d["status"] == "True" and d, timeout=30, what="Degraded: unschedulable")
    assert degraded["reason"] == "Unschedulable", degraded
    assert "Insufficient cpu" in degraded["message"], degraded
    status = get_tns(admin, namespace, "why")["status"]  # type: ignore[index]
    assert "cannot be scheduled" in status["components"]["workers"]["message"]

    # A quota that refuses new pods: the ReplicaSet controller's message in status.
    patch_tns(admin, namespace, "why", {"workers": {"resources": {
        "requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1",
                                                                  "memory": "512Mi"}}}})
    wait_ready(admin, namespace, "why", timeout=60)
    admin.request("POST", f"/api/v1/namespaces/{namespace}/resourcequotas", body={
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pods"},
        "spec": {"hard": {"pods": "0"}}})
    wait_for(lambda: "pods" in (admin.request(
        "GET", f"/api/v1/namespaces/{namespace}/resourcequotas/pods").get("status") or {}).get(
        "hard", {}), timeout=10, what="the quota to be counted")
    patch_tns(admin, namespace, "why", {"workers": {"replicas": 3}})
    degraded = wait_for(
        lambda: (d := condition(get_tns(admin, namespace, "why"), "Degraded"))
        and d["status"] == "True" and d, timeout=30, what="Degraded: quota")
    assert degraded["reason"] == "FailedCreate" and "exceeded quota" in degraded["message"]
    warnings = {e["reason"] for e in operator_events(admin, namespace)
                if e["type"] == "Warning"}
    assert warnings == {"Unschedulable", "FailedCreate"}, warnings
