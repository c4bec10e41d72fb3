"""The backup Job and the restore init container (builders/backup.py)."""

from __future__ import annotations

from typing import Any

from tests.operator.unit.helpers import OWNER, by_name, desired
from thumbnail_operator import constants as c
from thumbnail_operator.api.v1 import BackupDestination, BackupRetention, parse_spec
from thumbnail_operator.builders import build_desired_state
from thumbnail_operator.builders.backup import (
    BackupSource,
    backup_job,
    location,
    resolved,
    restore_source_of,
)
from thumbnail_operator.builders.common import Context
from thumbnail_operator.builders.credentials import ensure_credentials

BACKUP = {"metadata": {"name": "nightly-1", "uid": "b-uid"}}
EXTERNAL = {"endpoint": "vault.example:9000", "secure": False,
            "secretRef": {"name": "vault-keys"}}


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def job(spec: dict[str, Any] | None = None, destination: dict[str, Any] | None = None,
        retention: BackupRetention | None = None) -> dict[str, Any]:
    ctx = Context(owner=OWNER, spec=parse_spec(spec))
    where = resolved(ctx, BackupDestination.model_validate(destination or {}))
    return backup_job(ctx, backup=BACKUP, destination=where, retention=retention)


def test_the_job_belongs_to_its_backup_and_runs_the_tool_with_the_service_config() -> None:
    built = job()
    meta = built["metadata"]
    assert meta["ownerReferences"] == [{
        "apiVersion": c.API_VERSION, "kind": c.BACKUP_KIND, "name": "nightly-1",
        "uid": "b-uid", "controller": True, "blockOwnerDeletion": True}]
    assert meta["labels"][c.BACKUP_LABEL] == "nightly-1"
    assert meta["labels"][c.LABEL_INSTANCE] == "demo"
    pod = built["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # every attempt leaves its report readable
    (tool,) = pod["containers"]
    assert tool["command"] == ["thumbnail-backup", "create"]
    assert tool["image"].startswith("thumbnail-service-worker:")
    assert tool["envFrom"] == [{"configMapRef": {"name": "demo-config"}},
                               {"secretRef": {"name": "demo-credentials"}}]
    assert tool["securityContext"]["readOnlyRootFilesystem"] is True
    # The backup needs no Redis (whose NetworkPolicy would not admit it): no wait for it.
    assert [c["name"] for c in pod["initContainers"]] == [
        "wait-for-postgresql", "wait-for-minio"]
    variables = env(tool)
    assert variables["THUMBNAIL_BACKUP_ID"] == "nightly-1"
    assert variables["THUMBNAIL_BACKUP_BUCKET"] == "backups"
    # The default prefix keeps several services apart in one bucket.
    assert variables["THUMBNAIL_BACKUP_PREFIX"] == "media/demo"
    assert variables["THUMBNAIL_BACKUP_SCHEDULED"] == "false"
    assert "THUMBNAIL_BACKUP_S3_ENDPOINT" not in variables  # the service's own storage
    assert "THUMBNAIL_BACKUP_RETENTION_COUNT" not in variables


def test_an_external_destination_reads_its_keys_from_the_users_secret() -> None:
    variables = env(job(destination={"prefix": "x/y", "s3": EXTERNAL})["spec"]["template"][
        "spec"]["containers"][0])
    assert variables["THUMBNAIL_BACKUP_PREFIX"] == "x/y"
    assert variables["THUMBNAIL_BACKUP_S3_ENDPOINT"] == "vault.example:9000"
    assert variables["THUMBNAIL_BACKUP_S3_SECURE"] == "false"
    assert variables["THUMBNAIL_BACKUP_S3_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "vault-keys", "key": "accessKey"}}
    assert variables["THUMBNAIL_BACKUP_S3_SECRET_KEY"] == {
        "secretKeyRef": {"name": "vault-keys", "key": "secretKey"}}


def test_a_scheduled_backup_carries_the_retention() -> None:
    variables = env(job(retention=BackupRetention(count=3, max_age_days=2))["spec"]["template"][
        "spec"]["containers"][0])
    assert variables["THUMBNAIL_BACKUP_SCHEDULED"] == "true"
    assert variables["THUMBNAIL_BACKUP_RETENTION_COUNT"] == "3"
    assert variables["THUMBNAIL_BACKUP_RETENTION_MAX_AGE_SECONDS"] == str(2 * 86400)


def test_location_says_where_a_backup_is() -> None:
    assert location(BackupDestination(bucket="b", prefix="n/s"), "id1") == (
        "s3://b/n/s/id1/ on the service's own object storage")


def test_a_restore_runs_after_the_migrations_and_only_when_asked() -> None:
    spec = parse_spec({"bootstrap": {"fromBackup": {"backupId": "old-1", "destination": {
        "prefix": "shop/old", "s3": EXTERNAL}}}})
    source = BackupSource("old-1", BackupDestination.model_validate(
        {"prefix": "shop/old", "s3": EXTERNAL}))
    state = build_desired_state(OWNER, spec, ensure_credentials(spec, None), {}, None,
                                source)
    deployment = by_name(state)[("Deployment", "demo-server")]
    server = deployment["spec"]["template"]["spec"]
    names = [c["name"] for c in server["initContainers"]]
    assert names[-2:] == ["migrate", "restore"]
    restore = server["initContainers"][-1]
    assert restore["command"] == ["thumbnail-backup", "restore"]
    assert env(restore)["THUMBNAIL_BACKUP_ID"] == "old-1"
    assert env(restore)["THUMBNAIL_BACKUP_PREFIX"] == "shop/old"
    plain = by_name(desired())[("Deployment", "demo-server")]
    assert "restore" not in [c["name"] for c in plain["spec"]["template"]["spec"]["initContainers"]]
    assert restore_source_of(plain) is None


def test_the_server_records_what_it_restores_so_the_same_container_is_rebuilt() -> None:
    # Once the ThumbnailBackup is gone, the reconciler rebuilds the restore from this
    # record: the same desired object (applied-hash included), so nothing is re-applied.
    spec = parse_spec({"bootstrap": {"fromBackup": {"backupName": "nightly-1"}}})
    source = BackupSource("nightly-1", BackupDestination.model_validate(
        {"prefix": "shop/old", "s3": EXTERNAL}))
    credentials = ensure_credentials(spec, None)
    first = by_name(build_desired_state(OWNER, spec, credentials, {}, None, source))
    recorded = restore_source_of(first[("Deployment", "demo-server")])
    assert recorded == source
    again = by_name(build_desired_state(OWNER, spec, credentials, {}, None, recorded))
    assert again[("Deployment", "demo-server")] == first[("Deployment", "demo-server")]


def test_an_unreadable_restore_record_is_no_restore() -> None:
    broken = {"metadata": {"annotations": {c.RESTORE_SOURCE_ANNOTATION: '{"backupId": 1}'}}}
    assert restore_source_of(broken) is None
    assert restore_source_of({"metadata": {"annotations": {
        c.RESTORE_SOURCE_ANNOTATION: "not json"}}}) is None


def test_the_restore_secret_feeds_the_config_hash() -> None:
    from thumbnail_operator.builders import external_secret_names

    spec = parse_spec({"bootstrap": {"fromBackup": {"backupId": "old-1", "destination": {
        "s3": EXTERNAL}}}})
    assert external_secret_names(OWNER, spec) == ["vault-keys"]
