"""The ThumbnailBackup resource: one backup of one ThumbnailService (like CloudNativePG's
Backup). `python -m thumbnail_operator.api.crd` writes its CRD next to the ThumbnailService's.

A backup is immutable: its spec is fixed at creation, the operator runs it once as a Job and
records the outcome in status. Deleting a ThumbnailBackup leaves the data in the destination
(retention of scheduled backups deletes both).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator.api.schema.openapi import Schema, integer, obj, resource, rule, string
from thumbnail_operator.api.schema.v1alpha1 import BACKUP_ID, CONDITION, backup_destination
from thumbnail_operator.api.v1 import BackupDestination, _Model


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self in (Phase.COMPLETED, Phase.FAILED)


class ServiceReference(_Model):
    name: str


class ThumbnailBackupSpec(_Model):
    service: ServiceReference
    # None: the ThumbnailService's `spec.backup.destination`.
    destination: BackupDestination | None = None


def parse_backup_spec(raw: dict[str, Any] | None) -> ThumbnailBackupSpec:
    return ThumbnailBackupSpec.model_validate(raw or {})




def _count(description: str) -> Schema:
    return integer(description, minimum=0, maximum=2**62)


SPEC = obj(
    "Which ThumbnailService to back up, and where to (fixed at creation).",
    {
        "service": obj("The ThumbnailService of this namespace to back up.",
                       {"name": string("Its name.", min_length=1, max_length=63)},
                       required=["name"]),
        "destination": backup_destination(
            "this backup is written (unset: the service's spec.backup.destination)",
            defaulted=False),
    },
    required=["service"],
    rules=[rule("self == oldSelf", "a ThumbnailBackup's spec cannot change: create another one")],
)

STATUS = obj(
    "What the backup Job did.",
    {
        "phase": string("Pending, Running, Completed or Failed.",
                        enum=[phase.value for phase in Phase]),
        "backupId": string("The backup's id in the destination (its name).", max_length=63),
        "location": string("Where the backup is: s3://<bucket>/<prefix>/<id>/ and the "
                           "endpoint.", max_length=1024),
        "destination": backup_destination(
            "this backup was written (resolved; a restore by backupName reads it from here)",
            defaulted=False),
        "jobName": string("The Job that runs (ran) the backup.", max_length=63),
        "startedAt": string("When the backup Job started (RFC 3339).", max_length=64),
        "finishedAt": string("When it finished (RFC 3339).", max_length=64),
        "jobs": _count("Thumbnail jobs in the backup."),
        "thumbnails": _count("Thumbnails in the backup."),
        "objects": _count("Objects copied (originals and thumbnails)."),
        "bytes": _count("Bytes of the objects copied."),
        "size": string("`bytes`, for people (e.g. 12.5 MiB).", max_length=32),
        "skipped": _count("Jobs left out: their objects were gone (deleted during the "
                           "backup)."),
        "message": string("What happened, or why it failed.", max_length=4096),
        "conditions": {"type": "array", "description": "Completed (True once the backup is "
                       "complete; False with the reason when it failed).",
                       "items": CONDITION, "maxItems": 8,
                       "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    },
)


def version_schema() -> Schema:
    return {
        **resource("ThumbnailBackup is one backup of a ThumbnailService's PostgreSQL jobs and "
                   "object storage (originals and thumbnails), consistent with each other.",
                   {"type": "string", "maxLength": 63, "pattern": BACKUP_ID}, SPEC, STATUS),
        "required": ["spec"],
    }


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Service", "type": "string", "jsonPath": ".spec.service.name",
     "description": "The ThumbnailService backed up."},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase",
     "description": "Pending, Running, Completed or Failed."},
    {"name": "Jobs", "type": "integer", "jsonPath": ".status.jobs",
     "description": "Thumbnail jobs in the backup."},
    {"name": "Size", "type": "string", "jsonPath": ".status.size",
     "description": "Bytes of the objects in the backup."},
    {"name": "Started", "type": "date", "jsonPath": ".status.startedAt"},
    {"name": "Finished", "type": "date", "jsonPath": ".status.finishedAt"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def custom_resource_definition() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{c.BACKUP_PLURAL}.{c.GROUP}",
            "labels": {c.LABEL_PART_OF: c.PART_OF},
        },
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": c.BACKUP_KIND,
                "listKind": f"{c.BACKUP_KIND}List",
                "plural": c.BACKUP_PLURAL,
                "singular": "thumbnailbackup",
                "shortNames": ["tnb"],
                "categories": ["thumbnails"],
            },
            "versions": [{
                "name": c.VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": version_schema()},
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
            }],
        },
    }


def human_size(count: int) -> str:
    """1536 -> '1.5 KiB' (the Size column)."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


__all__ = ["Phase", "ThumbnailBackupSpec", "custom_resource_definition", "human_size",
           "parse_backup_spec"]
