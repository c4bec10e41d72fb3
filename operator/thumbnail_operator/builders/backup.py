"""Backups and restores run `thumbnail-backup` (service/thumbnail_service/backup) from the
worker image: a Job per ThumbnailBackup, and an init container of the API server when the
ThumbnailService starts from a backup.

Both read the service's own configuration and credentials (the ConfigMap and Secret the
server and workers use) and the destination from THUMBNAIL_BACKUP_* variables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import BackupDestination, BackupRetention
from thumbnail_operator.builders.app import app_env, dependency_waits
from thumbnail_operator.builders.common import APP_UID, Context, Obj, container, tmp_volume
from thumbnail_operator.builders.workloads import pod_spec

BACKUP_RESOURCES: Obj = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}
COMMAND = "thumbnail-backup"
# A backup Job that has not finished in this time is stopped and reported as failed.
BACKUP_DEADLINE_SECONDS = 6 * 3600
DAY_SECONDS = 86400


@dataclass(frozen=True)
class BackupSource:
    """A backup to restore: its id and its (resolved) destination."""

    backup_id: str
    destination: BackupDestination


def source_annotation(source: BackupSource) -> str:
    """The value of RESTORE_SOURCE_ANNOTATION: read back by `restore_source_of`."""
    return json.dumps({
        "backupId": source.backup_id,
        "destination": source.destination.model_dump(by_alias=True, exclude_none=True),
    }, sort_keys=True)


def restore_source_of(deployment: Obj) -> BackupSource | None:
    """The backup an API server Deployment restores (None: none, or an unreadable record)."""
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    try:
        record = json.loads(annotations[c.RESTORE_SOURCE_ANNOTATION])
        return BackupSource(str(record["backupId"]),
                            BackupDestination.model_validate(record["destination"]))
    except (KeyError, TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def resolved(ctx: Context, destination: BackupDestination) -> BackupDestination:
    """The destination with its prefix filled in (empty: <namespace>/<name>)."""
    if destination.prefix:
        return destination
    return destination.model_copy(
        update={"prefix": f"{ctx.owner.namespace}/{ctx.owner.name}"})


def location(destination: BackupDestination, backup_id: str) -> str:
    """s3://bucket/prefix/id/ and where that bucket is, for people."""
    where = destination.s3.endpoint if destination.s3 else "the service's own object storage"
    path = "/".join(part for part in (destination.bucket, destination.prefix, backup_id) if part)
    return f"s3://{path}/ on {where}"


def destination_env(destination: BackupDestination, backup_id: str) -> list[Obj]:
    env: list[Obj] = [
        {"name": "THUMBNAIL_BACKUP_ID", "value": backup_id},
        {"name": "THUMBNAIL_BACKUP_BUCKET", "value": destination.bucket},
        {"name": "THUMBNAIL_BACKUP_PREFIX", "value": destination.prefix},
    ]
    s3 = destination.s3
    if s3 is not None:
        ref = s3.secret_ref
        env += [
            {"name": "THUMBNAIL_BACKUP_S3_ENDPOINT", "value": s3.endpoint},
            {"name": "THUMBNAIL_BACKUP_S3_SECURE", "value": str(s3.secure).lower()},
            {"name": "THUMBNAIL_BACKUP_S3_REGION", "value": s3.region},
            {"name": "THUMBNAIL_BACKUP_S3_ACCESS_KEY",
             "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.access_key_key}}},
            {"name": "THUMBNAIL_BACKUP_S3_SECRET_KEY",
             "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.secret_key_key}}},
        ]
    return env


def _tool(ctx: Context, name: str, action: str, env: list[Obj]) -> Obj:
    tool = container(
        name,
        ctx.spec.workers.image,
        BACKUP_RESOURCES,
        command=[COMMAND, action],
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
        **app_env(ctx),
    )
    tool["env"] = [*tool["env"], *env]
    return tool


def backup_job_name(backup_name: str) -> str:
    return f"{backup_name[:56]}-backup"


def backup_job(
    ctx: Context,
    *,
    backup: Obj,
    destination: BackupDestination,
    retention: BackupRetention | None,
) -> Obj:
    """The Job of one ThumbnailBackup (owned by it, so it goes when the backup object goes).

    `retention` is set for scheduled backups only: the tool then prunes older scheduled
    backups of this service from the destination and reports which."""
    name = backup["metadata"]["name"]
    env = [
        *destination_env(destination, name),
        {"name": "THUMBNAIL_BACKUP_SERVICE",
         "value": f"{ctx.owner.namespace}/{ctx.owner.name}"},
        {"name": "THUMBNAIL_BACKUP_SCHEDULED", "value": str(retention is not None).lower()},
    ]
    if retention is not None:
        env += [
            {"name": "THUMBNAIL_BACKUP_RETENTION_COUNT", "value": str(retention.count)},
            {"name": "THUMBNAIL_BACKUP_RETENTION_MAX_AGE_SECONDS",
             "value": str(retention.max_age_days * DAY_SECONDS)},
        ]
    pod = pod_spec(ctx, APP_UID, [_tool(ctx, "backup", "create", env)], [tmp_volume()])
    # Never restarted in place: each attempt is a new pod whose termination message (the
    # tool's JSON report) stays readable.
    pod["restartPolicy"] = "Never"
    pod["initContainers"] = dependency_waits(ctx, "backup")
    labels = {**ctx.labels("backup"), c.BACKUP_LABEL: name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": backup_job_name(name),
            "namespace": ctx.owner.namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": c.API_VERSION, "kind": c.BACKUP_KIND, "name": name,
                "uid": backup["metadata"]["uid"], "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": BACKUP_DEADLINE_SECONDS,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def restore_container(ctx: Context, source: BackupSource) -> Obj:
    """An init container of the API server, after `migrate`: restores the backup once (the
    tool records it in the database, so later pods pass at once) and refuses a database that
    already holds jobs."""
    return _tool(ctx, "restore", "restore",
                 destination_env(source.destination, source.backup_id))
