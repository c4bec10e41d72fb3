"""One reconcile pass against an in-memory API: writes only what differs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.unit.controller.fake_kube import FakeKube
from thumbnail_operator import constants as c
from thumbnail_operator.controller.events import EventRecorder
from thumbnail_operator.controller.reconcile import Reconciler, RetryNeeded

NS = "media"


def setup(spec: dict[str, Any] | None = None) -> tuple[FakeKube, Reconciler]:
    kube = FakeKube()
    kube.put({
        "apiVersion": c.DEPRECATED_API_VERSION, "kind": c.KIND,
        "metadata": {"name": "demo", "namespace": NS, "uid": "cr-uid", "generation": 1},
        "spec": spec or {},
    })
    return kube, Reconciler(kube, EventRecorder(kube))  # type: ignore[arg-type]


def test_first_pass_creates_everything_and_reports_status() -> None:
    kube, reconciler = setup()
    outcome = reconciler.reconcile(NS, "demo")
    assert not outcome.errors
    assert ("create", "Secret", "demo-credentials") in kube.writes
    assert ("create", "Secret", "demo-credentials-copy") in kube.writes
    assert sum(1 for verb, *_ in kube.writes if verb == "apply") == len(outcome.written) - 2
    assert outcome.status_written
    status = kube.objects[(c.KIND, NS, "demo")]["status"]
    assert status["observedGeneration"] == 1
    assert {e["reason"] for e in kube.events} >= {"Created", "ComponentsNotReady"}


def test_first_pass_reads_no_child_by_name() -> None:
    """One request per new child: no GET by name before applying it (only the resource and
    the credentials Secrets, which are created, never applied, are read by name)."""
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    assert kube.gets == [
        (c.KIND, "demo"), ("Secret", "demo-credentials"), ("Secret", "demo-credentials-copy"),
    ]


def test_unlabelled_leftover_is_adopted_and_cleaned() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    kube.objects.pop(("ConfigMap", NS, "demo-config"))
    kube.put({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "demo-config", "namespace": NS}, "data": {"old": "1"}})
    kube.events.clear()
    outcome = reconciler.reconcile(NS, "demo")
    assert "ConfigMap/demo-config" in outcome.written
    config_map = kube.objects[("ConfigMap", NS, "demo-config")]
    assert config_map["metadata"]["labels"][c.LABEL_MANAGED_BY] == c.FIELD_MANAGER
    assert "old" not in config_map["data"]
    messages = [e["message"] for e in kube.events if e["reason"] == "Adopted"]
    assert len(messages) == 1 and messages[0].startswith(
        "adopted ConfigMap/demo-config, an existing object of that name"), messages


def test_child_that_lost_its_labels_is_repaired_not_adopted() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    del kube.objects[("Service", NS, "demo-redis")]["metadata"]["labels"][c.LABEL_MANAGED_BY]
    kube.events.clear()
    outcome = reconciler.reconcile(NS, "demo")
    assert outcome.written == ["Service/demo-redis"]
    assert [e["reason"] for e in kube.events] == ["Repaired"]
    assert "metadata.labels" in kube.events[0]["message"]


def test_background_events_keep_order_and_are_flushed_on_close() -> None:
    kube = FakeKube()
    recorder = EventRecorder(kube, background=True)  # type: ignore[arg-type]
    owner = {"apiVersion": c.DEPRECATED_API_VERSION,
             "metadata": {"name": "demo", "namespace": NS, "uid": "u"}}
    for index in range(20):
        recorder.record(owner, "Normal", "Created", f"event {index}")
    recorder.close()
    assert [e["message"] for e in kube.events] == [f"event {i}" for i in range(20)]
    recorder.record(owner, "Normal", "Created", "after close")  # dropped, never raises
    assert len(kube.events) == 20


def test_second_pass_writes_nothing() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    kube.writes.clear()
    kube.events.clear()
    outcome = reconciler.reconcile(NS, "demo")
    assert kube.writes == [] and kube.events == []
    assert not outcome.written and not outcome.status_written


def test_hand_edit_is_repaired_and_reported() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    kube.objects[("Deployment", NS, "demo-server")]["spec"]["replicas"] = 9
    kube.writes.clear()
    outcome = reconciler.reconcile(NS, "demo")
    assert kube.writes == [("apply", "Deployment", "demo-server")]
    assert outcome.written == ["Deployment/demo-server"]
    assert kube.objects[("Deployment", NS, "demo-server")]["spec"]["replicas"] == 1
    assert any("spec.replicas" in e["message"] for e in kube.events if e["reason"] == "Repaired")


def test_unwanted_owned_children_are_pruned_but_foreign_ones_kept() -> None:
    kube, reconciler = setup({"server": {"service": {"nodePort": {"enabled": True}}}})
    reconciler.reconcile(NS, "demo")
    ours = kube.objects[("Service", NS, "demo-server-nodeport")]
    kube.put({**ours, "metadata": {**ours["metadata"], "name": "not-ours",
                                   "ownerReferences": [{"uid": "someone-else"}]}})
    cr = kube.objects[(c.KIND, NS, "demo")]
    cr["spec"] = {}
    kube.writes.clear()
    outcome = reconciler.reconcile(NS, "demo")
    assert outcome.deleted == ["Service/demo-server-nodeport"]
    assert ("Service", NS, "not-ours") in kube.objects


def test_credentials_survive_every_pass() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    before = dict(kube.objects[("Secret", NS, "demo-credentials")]["data"])
    cr = kube.objects[(c.KIND, NS, "demo")]
    cr["spec"] = {"worker": {"replicas": 5}}
    reconciler.reconcile(NS, "demo")
    assert kube.objects[("Secret", NS, "demo-credentials")]["data"] == before


def test_lost_creation_race_for_the_secret_retries() -> None:
    kube, reconciler = setup()
    original_list = kube.list

    def list_hiding_secret(kind: Any, namespace: str, labels: dict[str, str]) -> list[Any]:
        return [] if kind.kind == "Secret" else original_list(kind, namespace, labels)

    def get_hiding_secret(kind: Any, namespace: str, name: str) -> Any:
        return None if kind.kind == "Secret" else original_get(kind, namespace, name)

    original_get = kube.get
    kube.list = list_hiding_secret  # type: ignore[method-assign]
    kube.get = get_hiding_secret  # type: ignore[method-assign]
    kube.put({"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "demo-credentials", "namespace": NS}, "data": {}})
    with pytest.raises(RetryNeeded):
        reconciler.reconcile(NS, "demo")


def test_paused_and_missing_resources_are_skipped() -> None:
    kube, reconciler = setup()
    kube.objects[(c.KIND, NS, "demo")]["metadata"]["annotations"] = {c.PAUSE_ANNOTATION: "true"}
    assert "paused" in reconciler.reconcile(NS, "demo").skipped
    assert kube.writes == []
    assert reconciler.reconcile(NS, "nothing").skipped == "gone"


# -- credentials are data -------------------------------------------------------------------


def _secret_data(kube: FakeKube, name: str) -> dict[str, str]:
    return dict(kube.objects[("Secret", NS, name)]["data"])


def _status(kube: FakeKube) -> dict[str, Any]:
    return dict(kube.objects[(c.KIND, NS, "demo")]["status"])


def _condition(kube: FakeKube, type_: str) -> dict[str, Any]:
    return next(cond for cond in _status(kube)["conditions"] if cond["type"] == type_)


def test_deleted_credentials_come_back_with_the_same_values() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    before = _secret_data(kube, "demo-credentials")
    del kube.objects[("Secret", NS, "demo-credentials")]
    kube.events.clear()
    reconciler.reconcile(NS, "demo")
    assert _secret_data(kube, "demo-credentials") == before
    assert [e["reason"] for e in kube.events if e["type"] == "Warning"] == ["CredentialsRestored"]


def test_lost_credentials_stop_the_pass_and_say_what_to_do() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    for name in ("demo-credentials", "demo-credentials-copy"):
        del kube.objects[("Secret", NS, name)]
    kube.writes.clear()
    outcome = reconciler.reconcile(NS, "demo")
    assert kube.writes == [("status", c.KIND, "demo")]  # no new values, no child touched
    degraded = _condition(kube, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "ReconcileFailed"
    assert "regenerate-credentials=true" in degraded["message"]
    assert "THUMBNAIL_API_KEYS" in degraded["message"] and outcome.errors

    kube.objects[(c.KIND, NS, "demo")]["metadata"]["annotations"] = {
        f"{c.GROUP}/regenerate-credentials": "true"}
    outcome = reconciler.reconcile(NS, "demo")
    assert not outcome.errors and "Secret/demo-credentials" in outcome.written
    assert "CredentialsRegenerated" in {e["reason"] for e in kube.events}


def test_rotating_a_credential_updates_the_copy_and_rolls_its_data_store() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    secret = kube.objects[("Secret", NS, "demo-credentials")]
    secret["data"]["THUMBNAIL_REDIS_PASSWORD"] = "bmV3LXBhc3N3b3Jk"
    kube.writes.clear()
    outcome = reconciler.reconcile(NS, "demo")
    assert _secret_data(kube, "demo-credentials-copy")["THUMBNAIL_REDIS_PASSWORD"] == (
        "bmV3LXBhc3N3b3Jk")
    assert {"Deployment/demo-redis", "Deployment/demo-server", "Deployment/demo-worker",
            "Secret/demo-credentials-copy"} <= set(outcome.written)
    assert "StatefulSet/demo-postgresql" not in outcome.written


# -- what others added is removed -------------------------------------------------------------


def test_hand_set_env_is_reverted_and_reported() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    server = kube.objects[("Deployment", NS, "demo-server")]
    server["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "THUMBNAIL_AUTH_ENABLED", "value": "false"})
    kube.writes.clear()
    kube.events.clear()
    reconciler.reconcile(NS, "demo")
    assert kube.writes == [("json-patch", "Deployment", "demo-server")]
    env = kube.objects[("Deployment", NS, "demo-server")]["spec"]["template"]["spec"][
        "containers"][0]["env"]
    assert "THUMBNAIL_AUTH_ENABLED" not in {item["name"] for item in env}
    assert [e["reason"] for e in kube.events] == ["Repaired"]
    assert "env[THUMBNAIL_AUTH_ENABLED] removed" in kube.events[0]["message"]
    kube.writes.clear()
    reconciler.reconcile(NS, "demo")
    assert kube.writes == []


# -- status says why, and Warnings only for problems -----------------------------------------


def test_crash_looping_pod_degrades_with_its_cause_and_warns_once() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    assert not [e for e in kube.events if e["type"] == "Warning"]  # routine creation
    kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "demo-worker-abc", "namespace": NS,
        "labels": {c.LABEL_INSTANCE: "demo", c.LABEL_MANAGED_BY: c.FIELD_MANAGER,
                   c.LABEL_COMPONENT: "worker"}},
        "status": {"containerStatuses": [{
            "name": "worker", "ready": False, "image": "w",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 2,
                                         "message": "cannot reach redis"}}}]}})
    for _ in range(2):
        reconciler.reconcile(NS, "demo")
    degraded = _condition(kube, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "CrashLoopBackOff"
    assert "workers: pod demo-worker-abc, container worker keeps crashing" in degraded["message"]
    assert "cannot reach redis" in degraded["message"]
    assert _condition(kube, "Ready")["reason"] == "CrashLoopBackOff"
    warnings = [e for e in kube.events if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["CrashLoopBackOff"]


def test_rotation_annotation_rotates_once_and_records_it() -> None:
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    secret = ("Secret", NS, "demo-credentials")
    before = dict(kube.objects[secret]["data"])
    cr = kube.objects[(c.KIND, NS, "demo")]
    cr["metadata"]["annotations"] = {f"{c.GROUP}/rotate-credentials": "2026-12-07"}
    kube.put(cr)
    kube.events.clear()
    reconciler.reconcile(NS, "demo")
    after = kube.objects[secret]["data"]
    assert all(after[key] != value for key, value in before.items()), (before, after)
    copy = kube.objects[("Secret", NS, "demo-credentials-copy")]
    assert copy["data"] == after
    assert copy["metadata"]["annotations"][f"{c.GROUP}/rotation"] == "2026-12-07"
    status = kube.objects[(c.KIND, NS, "demo")]["status"]
    assert status["credentials"]["rotation"] == "2026-12-07"
    reasons = [e["reason"] for e in kube.events]
    assert reasons[0] == "CredentialsRotated" and "Adopted" not in reasons, reasons
    assert {e["type"] for e in kube.events} == {"Normal"}
    # Handled: later passes keep the values (and write nothing).
    outcome = reconciler.reconcile(NS, "demo")
    assert kube.objects[secret]["data"] == after
    assert not outcome.written and not outcome.status_written


def test_a_budget_comes_with_the_second_replica_and_goes_with_it() -> None:
    kube, reconciler = setup({"worker": {"replicas": 1}})
    reconciler.reconcile(NS, "demo")
    assert ("PodDisruptionBudget", NS, "demo-worker") not in kube.objects

    kube.objects[(c.KIND, NS, "demo")]["spec"] = {"worker": {"replicas": 3}}
    outcome = reconciler.reconcile(NS, "demo")
    assert "PodDisruptionBudget/demo-worker" in outcome.written
    budget = kube.objects[("PodDisruptionBudget", NS, "demo-worker")]
    assert budget["spec"]["maxUnavailable"] == 1

    kube.objects[(c.KIND, NS, "demo")]["spec"] = {"worker": {"replicas": 1}}
    kube.writes.clear()
    outcome = reconciler.reconcile(NS, "demo")
    assert outcome.deleted == ["PodDisruptionBudget/demo-worker"]
    assert ("PodDisruptionBudget", NS, "demo-worker") not in kube.objects
    assert ("delete", "PodDisruptionBudget", "demo-worker") in kube.writes
