"""Why a component is not ready: causes read from pods, controllers and Events."""

from __future__ import annotations

from typing import Any

import pytest

from thumbnail_operator.controller.diagnosis import (
    Cause,
    event_cause,
    job_failure_message,
    needs_events,
    pod_cause,
    workload_cause,
)


def pod(name: str = "demo-server-1", *, waiting: dict[str, Any] | None = None,
        last: dict[str, Any] | None = None, ready: bool = False,
        conditions: list[dict[str, Any]] | None = None, init: bool = False) -> dict[str, Any]:
    container = {"name": "server", "image": "localhost/server:1", "ready": ready,
                 "state": {"waiting": waiting} if waiting else {"running": {}},
                 "lastState": {"terminated": last} if last else {}}
    key = "initContainerStatuses" if init else "containerStatuses"
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "server", "resources": {"limits": {"memory": "64Mi"}}}]},
        "status": {key: [container], "conditions": conditions or []},
    }


@pytest.mark.parametrize("waiting,last,reason,words", [
    ({"reason": "ImagePullBackOff", "message": "Back-off pulling image"}, None,
     "ImagePullFailed", ["localhost/server:1", "Back-off pulling image"]),
    ({"reason": "ErrImagePull", "message": "not found"}, None, "ImagePullFailed", ["not found"]),
    ({"reason": "CrashLoopBackOff"}, {"reason": "Error", "exitCode": 3, "message": "boom\nbad"},
     "CrashLoopBackOff", ["exit code 3", "bad"]),
    ({"reason": "CrashLoopBackOff"}, {"reason": "OOMKilled", "exitCode": 137},
     "OOMKilled", ["memory limit (64Mi)"]),
    ({"reason": "CreateContainerConfigError", "message": "secret \"x\" not found"}, None,
     "ContainerConfigError", ['secret "x" not found']),
])
def test_container_states_name_their_cause(
    waiting: dict[str, Any], last: dict[str, Any] | None, reason: str, words: list[str]
) -> None:
    cause = pod_cause(pod(waiting=waiting, last=last))
    assert cause is not None and cause.reason == reason and cause.persistent
    for word in words:
        assert word in cause.message, (word, cause.message)


def test_init_containers_are_read_too() -> None:
    cause = pod_cause(pod(waiting={"reason": "ImagePullBackOff"}, init=True))
    assert cause is not None and cause.reason == "ImagePullFailed"


def test_unschedulable_pod_carries_the_scheduler_message() -> None:
    message = "0/2 nodes are available: 2 node(s) were unschedulable."
    cause = pod_cause(pod(conditions=[{"type": "PodScheduled", "status": "False",
                                       "reason": "Unschedulable", "message": message}]))
    assert cause == Cause("Unschedulable",
                          f"pod demo-server-1 cannot be scheduled: {message}", True)


def test_a_pod_that_is_merely_starting_has_no_cause() -> None:
    assert pod_cause(pod(waiting={"reason": "ContainerCreating"})) is None
    assert pod_cause(pod(ready=True)) is None


def test_a_quota_refusal_is_read_from_the_deployment_condition() -> None:
    deployment = {"kind": "Deployment", "status": {"conditions": [{
        "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
        "message": 'pods "x" is forbidden: exceeded quota: q'}]}}
    cause = workload_cause(deployment, [])
    assert cause is not None and cause.reason == "FailedCreate"
    assert "exceeded quota" in cause.message


def test_a_stateful_set_without_pods_asks_its_events() -> None:
    stateful_set = {"kind": "StatefulSet", "spec": {"replicas": 1}}
    assert needs_events(stateful_set, [])
    assert not needs_events(stateful_set, [pod()])
    assert not needs_events({"kind": "Deployment", "spec": {"replicas": 1}}, [])
    events = [
        {"type": "Warning", "reason": "FailedCreate", "message": "old", "lastTimestamp": "1"},
        {"type": "Warning", "reason": "FailedCreate", "message": "exceeded quota",
         "lastTimestamp": "2"},
        {"type": "Normal", "reason": "SuccessfulCreate", "message": "ok", "lastTimestamp": "3"},
    ]
    cause = event_cause(events)
    assert cause is not None and cause.message == "cannot create pods: exceeded quota"


def test_job_failure_keeps_the_last_log_lines() -> None:
    text = job_failure_message("bucket-init Job failed: BackoffLimitExceeded",
                               "one\ntwo\n\nthree\nmc: <ERROR> Unable to make bucket\n")
    assert text.endswith("two | three | mc: <ERROR> Unable to make bucket")
    assert job_failure_message("failed", "") == "failed"


def test_a_volume_still_being_provisioned_is_not_degraded() -> None:
    message = "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    cause = pod_cause(pod(conditions=[{"type": "PodScheduled", "status": "False",
                                       "reason": "Unschedulable", "message": message}]))
    assert cause is not None and cause.reason == "WaitingForVolume" and not cause.persistent


def test_the_newest_pod_speaks_for_the_latest_spec() -> None:
    old = pod("demo-worker-old", waiting={"reason": "CrashLoopBackOff"},
              last={"reason": "OOMKilled", "exitCode": 137})
    new = pod("demo-worker-new", waiting={"reason": "ImagePullBackOff"})
    old["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    new["metadata"]["creationTimestamp"] = "2026-01-01T00:01:00Z"
    cause = workload_cause({"kind": "Deployment"}, [old, new])
    assert cause is not None and cause.reason == "ImagePullFailed"
