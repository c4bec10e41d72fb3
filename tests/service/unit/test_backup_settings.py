"""thumbnail-backup's configuration, layout, manifest, report and progress (no servers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from thumbnail_service.backup import cli, report
from thumbnail_service.backup.layout import Location
from thumbnail_service.backup.manifest import Manifest, ManifestError, dump, parse, rfc3339
from thumbnail_service.backup.objects import S3Config
from thumbnail_service.backup.progress import Progress
from thumbnail_service.backup.settings import BackupSettings
from thumbnail_service.settings import Settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(__import__("os").environ):
        if name.startswith("THUMBNAIL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("THUMBNAIL_BACKUP_ID", "nightly-2025-06-01")
    monkeypatch.setenv("THUMBNAIL_BACKUP_BUCKET", "backups")
    return monkeypatch


def test_defaults(env: pytest.MonkeyPatch) -> None:
    backup = BackupSettings()  # type: ignore[call-arg]
    assert (backup.prefix, backup.s3_endpoint, backup.scheduled, backup.concurrency) == (
        "", "", False, 8)
    assert (backup.retention_count, backup.retention_max_age_seconds) == (0, 0)
    assert backup.report_path == "/dev/termination-log"


@pytest.mark.parametrize(
    ("name", "value"),
    [("ID", "Nightly"), ("ID", "-x"), ("ID", "x-"), ("ID", "a" * 64), ("ID", "a/b"),
     ("PREFIX", "/a"), ("PREFIX", "a/"), ("RETENTION_COUNT", "-1"), ("CONCURRENCY", "0")],
)
def test_bad_values_are_refused(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    env.setenv(f"THUMBNAIL_BACKUP_{name}", value)
    with pytest.raises(ValidationError):
        BackupSettings()  # type: ignore[call-arg]


def test_layout_with_and_without_a_prefix() -> None:
    nested = Location("b", "clusters/east", "n1")
    assert nested.manifest_key == "clusters/east/n1/manifest.json"
    assert nested.jobs_key == "clusters/east/n1/jobs.jsonl.gz"
    assert nested.object_key("originals", "u/original") == "clusters/east/n1/originals/u/original"
    assert nested.url == "s3://b/clusters/east/n1/"
    assert nested.sibling("n0").base == "clusters/east/n0" and nested.parent == "clusters/east/"
    top = Location("b", "", "n1")
    assert (top.parent, top.manifest_key, top.url) == ("", "n1/manifest.json", "s3://b/n1/")


def test_the_destination_defaults_to_the_services_own_storage(env: pytest.MonkeyPatch) -> None:
    env.setenv("THUMBNAIL_S3_ENDPOINT", "minio:9000")
    env.setenv("THUMBNAIL_S3_ACCESS_KEY", "svc")
    settings = Settings()
    own = S3Config.backups(settings, BackupSettings())  # type: ignore[call-arg]
    assert own == S3Config.service(settings) and own.same_server(S3Config.service(settings))

    env.setenv("THUMBNAIL_BACKUP_S3_ENDPOINT", "s3.example.com")
    env.setenv("THUMBNAIL_BACKUP_S3_SECURE", "true")
    env.setenv("THUMBNAIL_BACKUP_S3_ACCESS_KEY", "other")
    remote = S3Config.backups(settings, BackupSettings())  # type: ignore[call-arg]
    assert (remote.endpoint, remote.secure, remote.access_key) == ("s3.example.com", True,
                                                                   "other")
    assert not remote.same_server(S3Config.service(settings))


def test_a_server_side_copy_needs_the_same_endpoint_and_identity() -> None:
    base = S3Config("minio:9000", "k", "s", False, "us-east-1")
    assert base.same_server(S3Config("MINIO:9000", "k", "other-secret", False, "eu"))
    assert not base.same_server(S3Config("minio.ns.svc:9000", "k", "s", False, "us-east-1"))
    assert not base.same_server(S3Config("minio:9000", "k2", "s", False, "us-east-1"))
    assert not base.same_server(S3Config("minio:9000", "k", "s", True, "us-east-1"))


def manifest() -> Manifest:
    return Manifest(id="b1", service="ns/svc", kind="scheduled",
                    started_at=datetime(2025, 6, 1, 2, 3, 4, 567, tzinfo=UTC),
                    finished_at=datetime(2025, 6, 1, 3, 0, tzinfo=UTC), schema_version=2,
                    jobs=3, thumbnails=6, objects=9, bytes=10, skipped=1)


def test_the_manifest_is_camel_case_json_with_utc_z_times() -> None:
    data = json.loads(dump(manifest()))
    assert data == {"format": 1, "id": "b1", "service": "ns/svc", "kind": "scheduled",
                    "startedAt": "2025-06-01T02:03:04Z", "finishedAt": "2025-06-01T03:00:00Z",
                    "schemaVersion": 2, "jobs": 3, "thumbnails": 6, "objects": 9, "bytes": 10,
                    "skipped": 1}
    again = parse(dump(manifest()))
    assert again.started_at == datetime(2025, 6, 1, 2, 3, 4, tzinfo=UTC)
    assert rfc3339(datetime(2025, 1, 1, 5, tzinfo=UTC).astimezone()) == "2025-01-01T05:00:00Z"


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"{", "not JSON"), (b"[]", "not a JSON object"),
     (b'{"format": 2}', "unsupported backup format 2: this release reads format 1"),
     (b'{"format": 1, "id": "x"}', "manifest.json: service")],
)
def test_an_unreadable_manifest_says_why(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse(data)


def test_a_report_always_fits_a_termination_message() -> None:
    pruned = [f"nightly-{i:05d}-{'x' * 40}" for i in range(200)]
    text = report.render({"id": "b", "jobs": 1, "pruned": pruned})
    data = json.loads(text)
    assert len(text.encode()) < report.LIMIT
    assert data["pruned"] == pruned[: len(data["pruned"])]
    assert data["prunedOmitted"] == 200 - len(data["pruned"]) > 0
    assert len(report.error_report("boom\n" * 5000).encode()) < report.LIMIT
    assert json.loads(report.error_report("a\nb  c")) == {"error": "a b c"}


def test_a_report_goes_nowhere_without_its_directory(tmp_path: Path) -> None:
    report.write(str(tmp_path / "absent" / "termination-log"), "{}")
    assert not (tmp_path / "absent").exists()
    report.write(str(tmp_path / "termination-log"), '{"id":"b"}')
    assert (tmp_path / "termination-log").read_text() == '{"id":"b"}\n'


def test_progress_is_logged_every_so_many_objects_or_seconds() -> None:
    clock = [0.0]
    progress = Progress("copied", 10, every_objects=4, every_seconds=5, clock=lambda: clock[0])
    assert progress.add(2, 100) is None
    assert progress.add(2, 100) == "copied 2/10 jobs, 4 objects, 0.0 MB in 0s (0.0 MB/s)"
    clock[0] = 4.9
    assert progress.add(1, 1_000_000) is None
    clock[0] = 10
    assert progress.add(1, 1_000_000) == "copied 4/10 jobs, 6 objects, 2.0 MB in 10s (0.2 MB/s)"


def test_a_bad_configuration_fails_with_its_variables_in_the_report(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "termination-log"
    env.setenv("THUMBNAIL_BACKUP_REPORT_PATH", str(target))
    env.setenv("THUMBNAIL_BACKUP_ID", "Not_A_Label")
    env.delenv("THUMBNAIL_BACKUP_BUCKET")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["create"])
    assert exit_.value.code == 1
    error = json.loads(target.read_text())["error"]
    assert error.startswith("invalid configuration: THUMBNAIL_BACKUP_ID: String should match")
    assert "THUMBNAIL_BACKUP_BUCKET: Field required" in error
    assert capsys.readouterr().out == ""  # stdout carries reports only

    env.setenv("THUMBNAIL_BACKUP_ID", "ok")
    env.setenv("THUMBNAIL_BACKUP_BUCKET", "b")
    env.setenv("THUMBNAIL_DATABASE_PORT", "0")
    with pytest.raises(SystemExit):
        cli.main(["restore"])
    assert json.loads(target.read_text())["error"].startswith(
        "invalid configuration: THUMBNAIL_DATABASE_PORT: ")


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([])
    assert exit_.value.code == 2
    assert "create" in capsys.readouterr().err


def test_secrets_are_secret(env: pytest.MonkeyPatch) -> None:
    env.setenv("THUMBNAIL_BACKUP_S3_SECRET_KEY", "hunter2")
    backup = BackupSettings()  # type: ignore[call-arg]
    assert isinstance(backup.s3_secret_key, SecretStr) and "hunter2" not in repr(backup)
