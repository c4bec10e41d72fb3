"""Status comes from observed workload status, with well-behaved conditions."""

from __future__ import annotations

from typing import Any

from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.builders import Names
from thumbnail_operator.controller.status import (
    StatusInputs,
    compute_status,
    job_state,
    workload_state,
)

NAMES = Names("demo")
JOB = "demo-bucket-init-abc"


def deployment(name: str, replicas: int, ready: int, generation: int = 1,
               observed: int = 1) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "generation": generation},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": observed, "readyReplicas": ready,
                   "updatedReplicas": replicas, "availableReplicas": ready},
    }


def stateful_set(name: str, ready: int) -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": name, "generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": 1,
                   "currentRevision": "r1", "updateRevision": "r1"},
    }


def job(condition: str | None) -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True", "message": "boom"}] if condition else []
    return {"kind": "Job", "metadata": {"name": JOB}, "status": {"conditions": conditions}}


def healthy(**overrides: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    observed = {
        ("Deployment", "demo-server"): deployment("demo-server", 1, 1),
        ("Deployment", "demo-worker"): deployment("demo-worker", 2, 2),
        ("Deployment", "demo-redis"): deployment("demo-redis", 1, 1),
        ("StatefulSet", "demo-postgresql"): stateful_set("demo-postgresql", 1),
        ("StatefulSet", "demo-minio"): stateful_set("demo-minio", 1),
        ("Job", JOB): job("Complete"),
        ("Service", "demo-server"): {"kind": "Service"},
    }
    for name, obj in overrides.items():
        observed[(obj["kind"], name)] = obj
    return observed


def status(observed: dict[tuple[str, str], dict[str, Any]], previous: dict[str, Any] | None = None,
           errors: tuple[str, ...] = (), now: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return compute_status(StatusInputs(
        spec=parse_spec({}), names=NAMES, generation=4, observed=observed, job_name=JOB,
        endpoint="http://demo-server.media.svc:8000", config_hash="h", errors=errors,
        previous=previous or {},
    ), now=now)


def conditions(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in result["conditions"]}


def test_all_components_ready_means_ready() -> None:
    result = status(healthy())
    cond = conditions(result)
    assert (cond["Ready"]["status"], cond["Ready"]["reason"]) == ("True", "AllComponentsReady")
    assert cond["Progressing"]["status"] == "False"
    assert cond["Degraded"]["status"] == "False"
    assert result["observedGeneration"] == 4
    assert all(c["observedGeneration"] == 4 for c in result["conditions"])
    assert (result["serverReplicas"], result["workerReplicas"]) == ("1/1", "2/2")
    assert result["endpoints"]["cluster"] == "http://demo-server.media.svc:8000"
    assert result["components"]["workers"]["selector"].endswith("component=worker")


def test_a_rolling_component_is_progressing_not_ready() -> None:
    result = status(healthy(**{"demo-worker": deployment("demo-worker", 3, 1)}))
    cond = conditions(result)
    assert cond["Ready"]["status"] == "False"
    assert "workers (rolling out: 3/3 updated, 1/3 ready)" in cond["Ready"]["message"]
    assert cond["Progressing"]["status"] == "True"
    assert result["workerReplicas"] == "1/3"


def test_unobserved_generation_is_not_ready_even_with_ready_pods() -> None:
    state = workload_state(deployment("x", 1, 1, generation=3, observed=2))
    assert not state.ready


def test_a_rollout_whose_new_pod_is_stuck_is_not_ready() -> None:
    """The old pod is ready, the updated one fails (e.g. its init container): one ready, one
    updated, but two pods - not rolled out, so its cause gets reported."""
    stuck = deployment("x", 1, 1)
    stuck["status"]["replicas"] = 2
    state = workload_state(stuck)
    assert not state.ready
    assert state.message == "rolling out: 1/1 updated, 1/1 ready"
    stuck["status"]["replicas"] = 1  # the old pod went away
    assert workload_state(stuck).ready


def test_failed_job_or_apply_error_is_degraded() -> None:
    cond = conditions(status(healthy(**{JOB: job("Failed")})))
    assert cond["Degraded"]["status"] == "True"
    assert "bucket-init Job failed: boom" in cond["Degraded"]["message"]
    cond = conditions(status(healthy(), errors=("applying Service/x failed: forbidden",)))
    assert cond["Degraded"]["status"] == "True"
    assert cond["Ready"]["reason"] == "ReconcileFailed"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = status(healthy(), now="2026-01-01T00:00:00Z")
    same = status(healthy(), previous=first, now="2026-01-02T00:00:00Z")
    assert same == first
    broken = status(healthy(**{"demo-server": deployment("demo-server", 1, 0)}), previous=first,
                    now="2026-01-03T00:00:00Z")
    cond = conditions(broken)
    assert cond["Ready"]["lastTransitionTime"] == "2026-01-03T00:00:00Z"
    assert cond["Degraded"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_missing_children_and_job_states() -> None:
    result = status({})
    assert result["endpoints"]["cluster"] == ""
    assert not result["components"]["server"]["ready"]
    assert job_state(job(None)).message == "bucket-init Job running"
