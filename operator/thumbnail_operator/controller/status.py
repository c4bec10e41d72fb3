"""Status from what the cluster reports: workload status in, ThumbnailService status out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import NOT_CREATED_MESSAGE, ThumbnailServiceSpec
from thumbnail_operator.builders import ChildKey, Names
from thumbnail_operator.builders.credentials import Rotation
from thumbnail_operator.controller.diagnosis import Cause
from thumbnail_operator.controller.processing import Processing

Obj = dict[str, Any]


@dataclass(frozen=True)
class ComponentState:
    ready: bool
    replicas: int
    ready_replicas: int
    message: str
    failed: bool = False
    reason: str = ""  # why it is not ready, when something more than "starting" is known

    def as_status(self, **extra: str) -> Obj:
        return {
            "ready": self.ready,
            "replicas": self.replicas,
            "readyReplicas": self.ready_replicas,
            "message": self.message,
            **extra,
        }


# The CRD's transition rules read this exact message: while it is shown, the fields that
# feed the missing StatefulSet may still change (api/schema).
MISSING = ComponentState(False, 0, 0, NOT_CREATED_MESSAGE)
EXTERNAL = ComponentState(True, 0, 0, "external")


def workload_state(obj: Obj | None) -> ComponentState:
    """Rolled out and ready: the controller saw the latest spec and every pod is updated+ready."""
    if obj is None:
        return MISSING
    spec, status = obj.get("spec", {}), obj.get("status", {})
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    seen = int(status.get("observedGeneration", 0)) >= int(obj["metadata"].get("generation", 1))
    available = int(status.get("availableReplicas", ready))
    if obj["kind"] == "StatefulSet":
        available = ready
        if status.get("currentRevision") != status.get("updateRevision"):
            updated = min(updated, ready)
    # Every pod counted, old ones too: mid-rollout the old pod can be the ready one while
    # the updated pod is stuck (a failing init container), which is not "rolled out".
    current = int(status.get("replicas", updated))
    done = (seen and ready == desired and updated == desired and available == desired
            and current == desired)
    if done:
        message = f"{ready}/{desired} ready"
    elif not seen:
        message = "waiting for the controller to observe the latest spec"
    else:
        message = f"rolling out: {updated}/{desired} updated, {ready}/{desired} ready"
    return ComponentState(done, desired, ready, message)


def job_state(obj: Obj | None) -> ComponentState:
    if obj is None:
        return MISSING
    conditions = {
        cond["type"]: cond for cond in obj.get("status", {}).get("conditions", [])
        if cond.get("status") == "True"
    }
    if "Complete" in conditions:
        return ComponentState(True, 1, 1, "buckets created")
    if "Failed" in conditions:
        reason = conditions["Failed"].get("message") or conditions["Failed"].get("reason", "")
        return ComponentState(False, 1, 0, f"bucket-init Job failed: {reason}", failed=True,
                              reason="JobFailed")
    return ComponentState(False, 1, 0, "bucket-init Job running")


def explained(state: ComponentState, cause: Cause | None) -> ComponentState:
    """A not-ready component's state with the cause its pods or controller report."""
    if state.ready or cause is None:
        return state
    return ComponentState(False, state.replicas, state.ready_replicas, cause.message,
                          failed=state.failed or cause.persistent, reason=cause.reason)


@dataclass(frozen=True)
class Workload:
    """The object behind a `status.components` entry, and its pods' component label."""

    key: ChildKey
    component: str


def workloads(names: Names) -> dict[str, Workload]:
    """`status.components` key -> its Deployment or StatefulSet (the bucket Job aside)."""
    return {
        "server": Workload(("Deployment", names.server), "server"),
        "workers": Workload(("Deployment", names.worker), "worker"),
        "postgresql": Workload(("StatefulSet", names.postgresql), "postgresql"),
        "redis": Workload(("Deployment", names.redis), "redis"),
        "objectStorage": Workload(("StatefulSet", names.minio), "minio"),
    }


def components(
    spec: ThumbnailServiceSpec, names: Names, observed: Mapping[ChildKey, Obj], job_name: str,
    causes: Mapping[str, Cause] | None = None,
) -> dict[str, ComponentState]:
    managed = {"postgresql": spec.postgresql.is_managed, "redis": spec.redis.is_managed,
               "objectStorage": spec.object_storage.is_managed}
    # Keyed as in `status.components`.
    states = {
        name: workload_state(observed.get(workload.key)) if managed.get(name, True) else EXTERNAL
        for name, workload in workloads(names).items()
    }
    states["buckets"] = job_state(observed.get(("Job", job_name)))
    return {name: explained(state, (causes or {}).get(name)) for name, state in states.items()}


# How the Ready message names a component it waits for (only managed ones ever wait, and the
# managed object storage is MinIO).
_WAITING_FOR = {"objectStorage": "minio"}


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str, ok: bool | None, reason: str, message: str, generation: int,
    previous: Sequence[Obj], now: str,
) -> Obj:
    """A metav1.Condition whose lastTransitionTime moves only when its status changes
    (`ok` None: Unknown)."""
    status = "Unknown" if ok is None else "True" if ok else "False"
    before = next((cond for cond in previous if cond.get("type") == type_), None)
    changed = before is None or before.get("status") != status
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now if changed else before["lastTransitionTime"],  # type: ignore[index]
    }


@dataclass(frozen=True)
class StatusInputs:
    spec: ThumbnailServiceSpec
    names: Names
    generation: int
    observed: Mapping[ChildKey, Obj]
    job_name: str
    endpoint: str
    config_hash: str
    errors: Sequence[str]
    previous: Obj
    causes: Mapping[str, Cause] = field(default_factory=dict)  # by component, not-ready ones
    node_address: str = ""  # a node a server pod runs on, for the NodePort endpoint
    processing: Processing | None = None  # None: left out of the status
    rotation: Rotation | None = None  # the last credentials rotation
    autoscaling: Obj | None = None  # status.autoscaling; None: removed (autoscaling is off)


def compute_status(inputs: StatusInputs, now: str | None = None) -> Obj:
    now = now or now_rfc3339()
    states = components(
        inputs.spec, inputs.names, inputs.observed, inputs.job_name, inputs.causes
    )
    not_ready = [name for name, state in states.items() if not state.ready]
    failed = [name for name, state in states.items() if state.failed]
    problems = [*inputs.errors, *(
        f"{_WAITING_FOR.get(name, name)}: {states[name].message}" for name in failed
    )]
    # The first error names the condition: the operator's own failure, else the first
    # component's cause (ImagePullFailed, CrashLoopBackOff, OOMKilled, Unschedulable, ...).
    if inputs.errors:
        problem_reason = "ReconcileFailed"
    elif failed:
        problem_reason = states[failed[0]].reason or "ComponentFailed"
    else:
        problem_reason = "AsExpected"
    previous = inputs.previous.get("conditions", [])
    ready = not not_ready and not problems
    generation = inputs.generation

    if ready:
        ready_reason, ready_message = "AllComponentsReady", "every component is ready"
    elif problems:
        ready_reason, ready_message = problem_reason, "; ".join(problems)
    else:
        ready_reason, ready_message = "ComponentsNotReady", "waiting for: " + ", ".join(
            f"{_WAITING_FOR.get(name, name)} ({states[name].message})" for name in not_ready
        )
    progressing = bool(not_ready) and not problems
    conditions = [
        condition("Ready", ready, ready_reason, ready_message, generation, previous, now),
        condition(
            "Progressing", progressing,
            "RollingOut" if progressing else ("Stalled" if problems else "Idle"),
            ready_message if progressing else ("blocked by errors" if problems else "up to date"),
            generation, previous, now,
        ),
        condition(
            "Degraded", bool(problems), problem_reason,
            "; ".join(problems) if problems else "no errors",
            generation, previous, now,
        ),
    ]
    selector = ",".join(
        f"{k}={v}" for k, v in (
            (c.LABEL_NAME, c.APP_NAME),
            (c.LABEL_INSTANCE, inputs.names.instance),
            (c.LABEL_COMPONENT, "worker"),
        )
    )
    server, workers = states["server"], states["workers"]
    status: Obj = {
        "observedGeneration": generation,
        "conditions": conditions,
        "configHash": inputs.config_hash,
        "serverReplicas": f"{server.ready_replicas}/{server.replicas}",
        "workerReplicas": f"{workers.ready_replicas}/{workers.replicas}",
        "components": {
            name: state.as_status(**({"selector": selector} if name == "workers" else {}))
            for name, state in states.items()
        },
    }
    node_port = inputs.spec.server.service.node_port
    status["endpoints"] = {
        "cluster": inputs.endpoint if ("Service", inputs.names.server) in inputs.observed else "",
        # Always present (empty when off or while no server pod runs on a node): a merge
        # patch cannot drop a key that is just omitted.
        "nodePort": (
            f"{inputs.node_address}:{node_port.port}"
            if node_port.enabled and inputs.node_address else ""
        ),
    }
    if inputs.processing is not None:
        status["processing"] = inputs.processing.as_status()
    # Always present: None removes it once autoscaling is turned off.
    status["autoscaling"] = inputs.autoscaling
    if inputs.rotation is not None:
        status["credentials"] = {"rotation": inputs.rotation.token,
                                 "rotatedAt": inputs.rotation.at}
    return status
