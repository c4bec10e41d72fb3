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
    assert sum(1 for verb, *_ in kube.writes if verb == "apply") == len(outcome.written) - 1
    assert outcome.status_written
    status = kube.objects[(c.KIND, NS, "demo")]["status"]
    assert status["observedGeneration"] == 1
    assert {e["reason"] for e in kube.events} >= {"Created", "ComponentsNotReady"}


def test_first_pass_reads_no_child_by_name() -> None:
    """One request per new child: no GET by name before applying it (only the resource and
    the credentials Secret, which is created, never applied, are read by name)."""
    kube, reconciler = setup()
    reconciler.reconcile(NS, "demo")
    assert kube.gets == [(c.KIND, "demo"), ("Secret", "demo-credentials")]


def test_unlabelled_leftover_is_adopted_by_apply() -> None:
    kube, reconciler = setup()
    kube.put({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "demo-config", "namespace": NS}, "data": {"old": "1"}})
    outcome = reconciler.reconcile(NS, "demo")
    assert "ConfigMap/demo-config" in outcome.written
    labels = kube.objects[("ConfigMap", NS, "demo-config")]["metadata"]["labels"]
    assert labels[c.LABEL_MANAGED_BY] == c.FIELD_MANAGER
    messages = [e["message"] for e in kube.events if e["reason"] == "Updated"]
    assert messages == ["updated ConfigMap/demo-config (adopted an existing object of that name)"]


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
    assert any("spec.replicas" in e["message"] for e in kube.events if e["reason"] == "Updated")


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
