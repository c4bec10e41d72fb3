"""Issue 14 on the control plane (kwok: pods never run): a ThumbnailBackup gets its Job and a
status; a schedule makes ThumbnailBackups; a restore from a backup that is not ready holds the
API server and workers. The backups themselves run on the real node (tests/e2e)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.support import (
    condition,
    get_tns,
    patch_tns,
    sample,
    wait_for,
    wait_ready,
)
from tests.operator.support import create_tns as create
from thumbnail_operator import constants as c
from thumbnail_operator.kube import (
    DEPLOYMENT,
    EVENT,
    JOB,
    STATEFUL_SET,
    THUMBNAIL_BACKUP,
    KubeClient,
)

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]
NO_PERSISTENCE = {"enabled": False}


def backup(namespace: str, name: str, service: str) -> Obj:
    return {"apiVersion": c.API_VERSION, "kind": c.BACKUP_KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"service": {"name": service}}}


def test_a_backup_gets_its_job_and_reports_on_it(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    create(admin, namespace, sample("bk", persistence=NO_PERSISTENCE))
    wait_ready(admin, namespace, "bk", timeout=90)
    made = admin.create(backup(namespace, "bk-first", "bk"))

    job = wait_for(lambda: admin.get(JOB, namespace, "bk-first-backup"), timeout=20,
                   what="the backup Job")
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == (c.BACKUP_KIND, made["metadata"]["uid"])
    (tool,) = job["spec"]["template"]["spec"]["containers"]
    assert tool["command"] == ["thumbnail-backup", "create"]

    def reported() -> Obj | None:
        status = (admin.get(THUMBNAIL_BACKUP, namespace, "bk-first") or {}).get("status") or {}
        return status if status.get("jobName") else None

    status = reported() or wait_for(reported, timeout=20, what="the backup's status")
    assert status["location"] == f"s3://backups/{namespace}/bk/bk-first/ on the service's own " \
        "object storage"
    assert status["destination"] == {"bucket": "backups", "prefix": f"{namespace}/bk"}
    # kwok completes the Job's pod without running it, so no report exists: that must read
    # as a failure that says so, never as a backup.
    final = wait_for(lambda: (s := reported()) and s["phase"] in ("Completed", "Failed") and s,
                     timeout=60, what="the kwok Job finished")
    assert final["phase"] == "Failed", final
    assert "report is missing" in final["message"]
    assert condition({"status": final}, "Completed")["reason"] == "BackupFailed"  # type: ignore[index]
    reasons = {e["reason"] for e in admin.list(EVENT, namespace, {}, fields={
        "involvedObject.kind": c.BACKUP_KIND, "involvedObject.name": "bk-first"})}
    assert {"BackupStarted", "BackupFailed"} <= reasons
    # A finished backup never runs again: a deleted Job stays deleted.
    admin.delete(JOB, namespace, "bk-first-backup")
    admin.request("PATCH", THUMBNAIL_BACKUP.path(namespace, "bk-first"),
                  body={"metadata": {"labels": {"touched": "yes"}}},
                  content_type="application/merge-patch+json")
    with pytest.raises(AssertionError, match="timed out"):
        wait_for(lambda: admin.get(JOB, namespace, "bk-first-backup"), timeout=5,
                 what="no new Job")


def test_a_schedule_makes_backups(admin: KubeClient, operator: Any, namespace: str) -> None:
    create(admin, namespace, sample("sch", persistence=NO_PERSISTENCE,
                                    backup={"schedule": "* * * * *"}))
    made = wait_for(lambda: admin.list(THUMBNAIL_BACKUP, namespace,
                                       {c.SCHEDULED_LABEL: "true"}),
                    timeout=150, what="a scheduled ThumbnailBackup")
    first = made[0]
    assert first["metadata"]["name"].startswith("sch-")
    assert first["spec"] == {"service": {"name": "sch"}}
    wait_for(lambda: admin.get(JOB, namespace, f"{first['metadata']['name']}-backup"),
             timeout=20, what="its Job")


def test_a_bad_schedule_is_refused_or_reported(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    from tests.operator.support import expect_api_error

    error = expect_api_error(lambda: create(admin, namespace, sample(
        "badcron", persistence=NO_PERSISTENCE, backup={"schedule": "every day"})))
    assert "schedule" in error.message
    # Passes the pattern, but minute 61 does not exist: reported in the conditions.
    create(admin, namespace, sample("badcron", persistence=NO_PERSISTENCE,
                                    backup={"schedule": "61 * * * *"}))

    def degraded() -> Obj | None:
        found = condition(get_tns(admin, namespace, "badcron"), "Degraded")
        return found if found and found["status"] == "True" else None

    found = wait_for(degraded, timeout=60, what="Degraded with the schedule's error")
    assert "spec.backup.schedule" in found["message"] and "61" in found["message"]


def test_a_restore_from_a_missing_backup_holds_the_apps(
    admin: KubeClient, operator: Any, namespace: str
) -> None:
    create(admin, namespace, sample("rs", persistence=NO_PERSISTENCE,
                                    bootstrap={"fromBackup": {"backupName": "nope"}}))

    def degraded() -> Obj | None:
        found = condition(get_tns(admin, namespace, "rs"), "Degraded")
        return found if found and found["status"] == "True" else None

    found = wait_for(degraded, timeout=60, what="Degraded: the backup is missing")
    assert "ThumbnailBackup 'nope' does not exist" in found["message"]
    assert admin.get(DEPLOYMENT, namespace, "rs-server") is None
    assert admin.get(DEPLOYMENT, namespace, "rs-worker") is None
    # The data stores are created meanwhile: the restore needs them.
    wait_for(lambda: admin.get(STATEFUL_SET, namespace, "rs-postgresql"), timeout=20,
             what="the PostgreSQL StatefulSet")

    # The backup appears and completes (its status set here: kwok runs no backup): the API
    # server starts with the restore init container, after the migrations.
    admin.create(backup(namespace, "nope", "elsewhere"))
    where = {"bucket": "backups", "prefix": "old/rs"}
    admin.patch_status(THUMBNAIL_BACKUP, namespace, "nope", {
        "phase": "Completed", "destination": where})
    server = wait_for(lambda: admin.get(DEPLOYMENT, namespace, "rs-server"), timeout=60,
                      what="the API server, once the backup is complete")
    init = server["spec"]["template"]["spec"]["initContainers"]
    assert [i["name"] for i in init][-2:] == ["migrate", "restore"]
    variables = {e["name"]: e.get("value") for e in init[-1]["env"]}
    assert (variables["THUMBNAIL_BACKUP_ID"], variables["THUMBNAIL_BACKUP_PREFIX"]) == (
        "nope", "old/rs")
    wait_for(lambda: admin.get(DEPLOYMENT, namespace, "rs-worker"), timeout=20,
             what="the workers")

    # Retention (or a person) deletes the backup later: nothing rolls, nothing degrades.
    before = admin.get(DEPLOYMENT, namespace, "rs-server") or {}
    before_cr = get_tns(admin, namespace, "rs") or {}
    admin.delete(THUMBNAIL_BACKUP, namespace, "nope")
    # A change elsewhere makes sure a pass ran without the backup (observedGeneration).
    changed = patch_tns(admin, namespace, "rs", {"worker": {"replicas": 3}})
    assert changed["metadata"]["generation"] > before_cr["metadata"]["generation"]

    def passed() -> Obj | None:
        cr = get_tns(admin, namespace, "rs") or {}
        status = cr.get("status") or {}
        done = status.get("observedGeneration") == changed["metadata"]["generation"]
        return cr if done else None

    cr = wait_for(passed, timeout=60, what="a pass after the backup was deleted")
    assert (condition(cr, "Degraded") or {}).get("status") == "False"
    after = admin.get(DEPLOYMENT, namespace, "rs-server") or {}
    # A Deployment bumps its generation on any spec or annotation change (applied-hash).
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"]["spec"]["initContainers"][-1]["name"] == "restore"
