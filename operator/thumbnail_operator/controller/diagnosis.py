"""Why a component is not ready, from what its pods, controllers and Events report.

Pure: observed objects in, a `Cause` out. A cause is *persistent* when waiting will not heal
it (an image that cannot be pulled, a crash loop, a pod no node accepts, a quota that refuses
new pods, a failed Job): the status then says Degraded=True with the cause, instead of an
endless "rolling out".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

_IMAGE_PULL = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_CONFIG = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


@dataclass(frozen=True)
class Cause:
    reason: str  # CamelCase, becomes the condition reason
    message: str
    persistent: bool  # will not heal by waiting: Degraded


def _statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]


def _last_exit(container: Obj) -> str:
    terminated = (container.get("lastState") or {}).get("terminated") or {}
    if not terminated:
        return ""
    detail = (terminated.get("message") or "").strip().splitlines()
    text = f"{terminated.get('reason') or 'Error'}, exit code {terminated.get('exitCode')}"
    return f"{text}: {detail[-1][:200]}" if detail else text


def _limit(pod: Obj, container: str, resource: str) -> str:
    spec = pod.get("spec") or {}
    for item in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        if item.get("name") == container:
            return str(((item.get("resources") or {}).get("limits") or {}).get(resource, "?"))
    return "?"


def pod_cause(pod: Obj) -> Cause | None:
    """The most telling problem of one pod, or None when it is merely starting."""
    name = pod["metadata"]["name"]
    for container in _statuses(pod):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        who = f"pod {name}, container {container.get('name')}"
        last = (container.get("lastState") or {}).get("terminated") or {}
        if reason in _IMAGE_PULL:
            return Cause("ImagePullFailed", f"{who}: cannot pull image {container.get('image')}"
                         f" ({reason}): {waiting.get('message', '')}".rstrip(": "), True)
        if last.get("reason") == "OOMKilled" and (reason == "CrashLoopBackOff"
                                                  or not container.get("ready")):
            limit = _limit(pod, str(container.get("name")), "memory")
            return Cause("OOMKilled", f"{who} was killed for exceeding its memory limit "
                         f"({limit}); raise the component's resources.limits.memory", True)
        if reason == "CrashLoopBackOff":
            return Cause("CrashLoopBackOff", f"{who} keeps crashing; last exit: "
                         f"{_last_exit(container) or 'unknown'}", True)
        if reason in _CONFIG:
            return Cause("ContainerConfigError", f"{who}: {waiting.get('message', reason)}", True)
    for condition in (pod.get("status") or {}).get("conditions", []):
        if (condition.get("type") == "PodScheduled" and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"):
            message = condition.get("message", "")
            if "unbound immediate PersistentVolumeClaims" in message:
                # A provisioner still creating the volume: reported, but it may well heal.
                return Cause("WaitingForVolume", f"pod {name} waits for its volume: {message}",
                             False)
            return Cause("Unschedulable", f"pod {name} cannot be scheduled: {message}", True)
    return None


def controller_cause(workload: Obj | None) -> Cause | None:
    """What a Deployment's conditions say (e.g. a ResourceQuota refusing its pods)."""
    for condition in ((workload or {}).get("status") or {}).get("conditions", []):
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return Cause("FailedCreate", f"cannot create pods: {condition.get('message', '')}",
                         True)
        if (condition.get("type") == "Progressing" and condition.get("status") == "False"
                and condition.get("reason") == "ProgressDeadlineExceeded"):
            return Cause("ProgressDeadlineExceeded", condition.get("message", ""), True)
    return None


def event_cause(events: Iterable[Obj]) -> Cause | None:
    """The newest FailedCreate Warning about a workload (StatefulSets report no condition)."""
    failed = [e for e in events if e.get("type") == "Warning" and e.get("reason") == "FailedCreate"]
    if not failed:
        return None
    newest = max(failed, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return Cause("FailedCreate", f"cannot create pods: {newest.get('message', '')}", True)


def workload_cause(
    workload: Obj | None, pods: Sequence[Obj], events: Iterable[Obj] = ()
) -> Cause | None:
    """The controller's own report first, then the pods' - newest first, as they run the
    latest spec (an old pod's crash loop must not hide the new one's image pull failure) -
    then Events."""
    found = controller_cause(workload)
    if found is not None:
        return found
    newest_first = sorted(
        pods, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]),
        reverse=True,
    )
    for pod in newest_first:
        cause = pod_cause(pod)
        if cause is not None:
            return cause
    return event_cause(events)


def needs_events(workload: Obj | None, pods: Sequence[Obj]) -> bool:
    """Fewer pods than wanted: the controller may be failing to create them (ask its Events)."""
    if workload is None or workload.get("kind") != "StatefulSet":
        return False
    return len(pods) < int((workload.get("spec") or {}).get("replicas", 1))


def job_failure_message(job_message: str, log_tail: str) -> str:
    lines = [line for line in log_tail.strip().splitlines() if line.strip()][-3:]
    return f"{job_message}; last log lines: {' | '.join(lines)}" if lines else job_message
