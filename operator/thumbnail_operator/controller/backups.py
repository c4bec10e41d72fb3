"""ThumbnailBackup: run its Job once, report the outcome; make scheduled backups when due.

One level-based pass per backup, like the ThumbnailService's: read the backup, its
ThumbnailService and its Job, create the Job if it is missing, and derive the status from what
the Job and its pods report (the tool's JSON report is the pod's termination message). A
finished backup (Completed or Failed) is never run again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator.api.backup import Phase, human_size, parse_backup_spec
from thumbnail_operator.api.conversion import V1, to_v1
from thumbnail_operator.api.v1 import BackupDestination, ThumbnailServiceSpec, parse_spec
from thumbnail_operator.builders.backup import backup_job, location, resolved
from thumbnail_operator.builders.common import Context, Owner
from thumbnail_operator.controller import cron
from thumbnail_operator.controller.events import EventRecorder
from thumbnail_operator.controller.status import condition, now_rfc3339
from thumbnail_operator.kube import (
    JOB,
    POD,
    THUMBNAIL_BACKUP,
    THUMBNAIL_SERVICE,
    ApiError,
    KubeClient,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CONTAINER = "backup"


# -- pure: what the Job says -------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    phase: Phase
    message: str
    report: Obj  # the tool's JSON report (counts, times, pruned ids), or {}
    started_at: str = ""


def _job_condition(job: Obj, type_: str) -> Obj | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _termination(pod: Obj) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            terminated = (status.get("state") or {}).get("terminated") or {}
            return str(terminated.get("message") or "").strip()
    return ""


def _report(text: str) -> Obj:
    """The tool's JSON report; {"error": text} for anything else (e.g. a log tail)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"error": text} if text else {}
    return value if isinstance(value, dict) else {"error": text}


def observe_job(job: Obj | None, pods: list[Obj]) -> Observed:
    """The backup's phase from its Job and the Job's pods (newest last)."""
    if job is None:
        return Observed(Phase.PENDING, "creating the backup Job", {})
    started = str((job.get("status") or {}).get("startTime") or "")
    pods = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))
    if _job_condition(job, "Complete") is not None:
        done = [p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"]
        report = _report(_termination(done[-1])) if done else {}
        if not report or "error" in report:
            return Observed(Phase.FAILED, "the backup Job succeeded but its report is "
                            f"missing or unreadable: {report.get('error', '')!r}", {}, started)
        return Observed(Phase.COMPLETED, "backup complete", report, started)
    failed = _job_condition(job, "Failed")
    if failed is not None:
        reports = [_report(_termination(p)) for p in pods]
        errors = [r["error"] for r in reports if r.get("error")]
        why = errors[-1] if errors else failed.get("message", "")
        return Observed(Phase.FAILED, f"{failed.get('reason', 'Failed')}: {why}", {}, started)
    active = int((job.get("status") or {}).get("active") or 0)
    if active:
        return Observed(Phase.RUNNING, "the backup Job is running", {}, started)
    return Observed(Phase.PENDING, "waiting for the backup Job's pod", {}, started)


def backup_status(observed: Observed, previous: Obj, *, generation: int, job_name: str,
                  where: str, destination: BackupDestination, now: str) -> Obj:
    """The ThumbnailBackup status for what was observed (merge-patch shape)."""
    report = observed.report
    ok, reason = {
        Phase.COMPLETED: (True, "Completed"),
        Phase.FAILED: (False, "BackupFailed"),
    }.get(observed.phase, (None, observed.phase.value))
    status: Obj = {
        "phase": observed.phase.value,
        "message": observed.message,
        "jobName": job_name,
        "location": where,
        "destination": destination.model_dump(by_alias=True, exclude_none=True),
        "startedAt": str(report.get("startedAt") or observed.started_at or
                         previous.get("startedAt") or "") or None,
        "conditions": [condition("Completed", ok, reason, observed.message[:1024], generation,
                                 previous.get("conditions") or [], now)],
    }
    if observed.phase.finished:
        status["finishedAt"] = str(report.get("finishedAt") or now)
    if observed.phase is Phase.COMPLETED:
        status["backupId"] = str(report.get("id") or "")
        for key in ("jobs", "thumbnails", "objects", "bytes", "skipped"):
            status[key] = int(report.get(key) or 0)
        status["size"] = human_size(status["bytes"])
    return status


# -- I/O -----------------------------------------------------------------------------------------


class BackupReconciler:
    def __init__(self, kube: KubeClient, recorder: EventRecorder) -> None:
        self.kube = kube
        self.events = recorder

    def reconcile(self, namespace: str, name: str) -> None:
        backup = self.kube.get(THUMBNAIL_BACKUP, namespace, name)
        if backup is None or backup["metadata"].get("deletionTimestamp"):
            return
        previous: Obj = backup.get("status") or {}
        if previous.get("phase") in (Phase.COMPLETED.value, Phase.FAILED.value):
            return  # a backup runs once
        spec = parse_backup_spec(backup.get("spec"))
        service = self.kube.get(THUMBNAIL_SERVICE, namespace, spec.service.name)
        now = now_rfc3339()
        if service is None:
            self._write(backup, {
                "phase": Phase.PENDING.value,
                "message": f"ThumbnailService {spec.service.name!r} not found in {namespace}",
            })
            return
        ctx = _context(service)
        destination = resolved(ctx, spec.destination or ctx.spec.backup.destination)
        scheduled = backup["metadata"].get("labels", {}).get(c.SCHEDULED_LABEL) == "true"
        job = backup_job(ctx, backup=backup, destination=destination,
                         retention=ctx.spec.backup.retention if scheduled else None)
        job_name = job["metadata"]["name"]
        current = self.kube.get(JOB, namespace, job_name)
        if current is None:
            try:
                current, _ = self.kube.apply(job)
            except ApiError as err:
                self._write(backup, {"phase": Phase.PENDING.value,
                                     "message": f"creating Job/{job_name} failed: {err.message}"})
                raise
            self.events.record(backup, "Normal", "BackupStarted",
                               f"started Job/{job_name}: {location(destination, name)}")
        pods = self.kube.list(POD, namespace, {c.BACKUP_LABEL: name})
        observed = observe_job(current, pods)
        status = backup_status(observed, previous,
                               generation=int(backup["metadata"].get("generation", 1)),
                               job_name=job_name, where=location(destination, name),
                               destination=destination, now=now)
        self._write(backup, status)
        if observed.phase is Phase.COMPLETED:
            self.events.record(backup, "Normal", "BackupCompleted",
                               f"{status['jobs']} jobs, {status['objects']} objects, "
                               f"{status['size']} in {status['location']}")
            self._record_on_service(service, name, status)
            self._prune(namespace, spec.service.name, observed.report.get("pruned") or [])
        elif observed.phase is Phase.FAILED:
            self.events.record(backup, "Warning", "BackupFailed", observed.message)

    def _write(self, backup: Obj, status: Obj) -> None:
        previous = backup.get("status") or {}
        if all(previous.get(k) == v for k, v in status.items() if v is not None):
            return
        meta = backup["metadata"]
        self.kube.patch_status(THUMBNAIL_BACKUP, meta["namespace"], meta["name"], status)

    def _record_on_service(self, service: Obj, name: str, status: Obj) -> None:
        """`status.lastBackup` of the ThumbnailService (the LAST BACKUP column), unless a
        newer completed backup is recorded there already. The service's own passes never
        write that key, so this merge patch is the only writer."""
        current = (service.get("status") or {}).get("lastBackup") or {}
        if str(current.get("completedAt") or "") > str(status["finishedAt"]):
            return
        meta = service["metadata"]
        self.kube.patch_status(THUMBNAIL_SERVICE, meta["namespace"], meta["name"], {
            "lastBackup": {"name": name, "completedAt": status["finishedAt"],
                           "jobs": status["jobs"], "size": status["size"]}})

    def _prune(self, namespace: str, service: str, pruned: list[str]) -> None:
        """Retention deleted these scheduled backups' data: their objects go too."""
        for backup_id in pruned:
            backup = self.kube.get(THUMBNAIL_BACKUP, namespace, str(backup_id))
            labels = (backup or {}).get("metadata", {}).get("labels", {})
            if labels.get(c.SCHEDULED_LABEL) != "true" or labels.get(c.LABEL_INSTANCE) != service:
                continue
            try:
                self.kube.delete(THUMBNAIL_BACKUP, namespace, str(backup_id))
            except ApiError as err:
                log.warning("%s/%s: pruning ThumbnailBackup failed: %s", namespace,
                            backup_id, err.message)


def _context(service: Obj) -> Context:
    meta = service["metadata"]
    hub = service if service["apiVersion"] == V1 else to_v1(service)
    owner = Owner(meta["name"], meta["namespace"], meta["uid"], service["apiVersion"])
    return Context(owner=owner, spec=parse_spec(hub.get("spec")))


# -- scheduled backups ---------------------------------------------------------------------------


def scheduled_name(service: str, when: datetime) -> str:
    """`<service>-<yyyymmddhhmm>`: one name per scheduled time, so two operator replicas (or
    two passes) cannot make the same backup twice - the second create is a conflict."""
    return f"{service}-{when.strftime('%Y%m%d%H%M')}"


def due_backup(spec: ThumbnailServiceSpec, created: datetime, last: datetime | None,
               now: datetime) -> datetime | None:
    """The scheduled time to back up for now, if one passed since the last scheduled backup
    (or since the service was created). Missed times collapse into the latest one."""
    if not spec.backup.schedule:
        return None
    latest = cron.Schedule.parse(spec.backup.schedule).latest(now)
    if latest is None or latest <= created or (last is not None and latest <= last):
        return None
    return latest


def scheduled_backup(service: Obj, when: datetime) -> Obj:
    meta = service["metadata"]
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.BACKUP_KIND,
        "metadata": {
            "name": scheduled_name(meta["name"], when),
            "namespace": meta["namespace"],
            "labels": {c.LABEL_INSTANCE: meta["name"], c.LABEL_MANAGED_BY: c.FIELD_MANAGER,
                       c.LABEL_PART_OF: c.PART_OF, c.SCHEDULED_LABEL: "true"},
            "annotations": {SCHEDULED_AT_ANNOTATION: when.strftime("%Y-%m-%dT%H:%M:%SZ")},
        },
        "spec": {"service": {"name": meta["name"]}},
    }


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


SCHEDULED_AT_ANNOTATION = f"{c.GROUP}/scheduled-at"


def make_due_backup(kube: KubeClient, events: EventRecorder, service: Obj,
                    spec: ThumbnailServiceSpec, now: datetime) -> str | None:
    """Create the scheduled ThumbnailBackup that is due, if one is; its name, else None.
    Raises ValueError for a schedule that cannot be parsed."""
    if not spec.backup.schedule:
        return None
    meta = service["metadata"]
    existing = kube.list(THUMBNAIL_BACKUP, meta["namespace"],
                         {c.LABEL_INSTANCE: meta["name"], c.SCHEDULED_LABEL: "true"})
    times = [parse_time(b["metadata"]["annotations"][SCHEDULED_AT_ANNOTATION]) for b in existing
             if SCHEDULED_AT_ANNOTATION in (b["metadata"].get("annotations") or {})]
    due = due_backup(spec, parse_time(meta["creationTimestamp"]), max(times, default=None), now)
    if due is None:
        return None
    backup = scheduled_backup(service, due)
    try:
        kube.create(backup)
    except ApiError as err:
        if err.conflict:
            return None  # made already (another pass or replica)
        raise
    name = str(backup["metadata"]["name"])
    events.record(service, "Normal", "BackupScheduled",
                  f"created ThumbnailBackup/{name} for the scheduled time {due:%Y-%m-%d %H:%M}Z")
    return name
