"""thumbnail-backup create / restore as real processes against the real PostgreSQL and MinIO.

Jobs are made through the API and the worker; a backup of them is restored into a new
database and new buckets and must read back identical, row by row and byte by byte, and the
restored service must serve and process them. Then the refusals, idempotency, retention and
the streamed (different endpoint) path.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from minio import Minio

from tests.service import images
from tests.service.conftest import API_KEY
from tests.service.stack import Stack
from tests.service.test_processing_real import submit, wait_finished
from thumbnail_service.backup import objects
from thumbnail_service.backup.layout import Location
from thumbnail_service.backup.restore import recopy_missing_originals
from thumbnail_service.backup.settings import BackupSettings
from thumbnail_service.migrate import load_migrations
from thumbnail_service.settings import Settings
from thumbnail_substrate.process import free_port

pytestmark = pytest.mark.services
# `python -m` rather than the `thumbnail-backup` console script: the same main(), and it
# needs no reinstall of the package after pyproject.toml gained the script.
COMMAND = [sys.executable, "-m", "thumbnail_service.backup"]
SCHEMA_VERSION = max(m.version for m in load_migrations())
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --- helpers --------------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    report: dict[str, Any]
    output: str  # stdout + stderr (the logs)


def backup(command: str, env: dict[str, str], tmp: Path, **settings: object) -> Run:
    """Run `thumbnail-backup <command>` with THUMBNAIL_BACKUP_<NAME>=value for each setting."""
    report = tmp / f"report-{uuid.uuid4().hex[:8]}"
    full = {**env, "THUMBNAIL_BACKUP_REPORT_PATH": str(report)}
    full.update({f"THUMBNAIL_BACKUP_{k.upper()}": str(v) for k, v in settings.items()})
    proc = subprocess.run([*COMMAND, command], env=full, capture_output=True, text=True,
                          timeout=180)
    assert report.exists(), proc.stdout + proc.stderr
    written = json.loads(report.read_text())
    if proc.returncode == 0:  # the same JSON line on stdout
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == written
    assert len(report.read_bytes()) < 4096
    return Run(proc.returncode, written, proc.stdout + proc.stderr)


def ok(run: Run) -> dict[str, Any]:
    assert run.code == 0, run.output
    return run.report


def query(env: dict[str, str], sql: str, *args: object) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(
            host=env["THUMBNAIL_DATABASE_HOST"], port=int(env["THUMBNAIL_DATABASE_PORT"]),
            user=env["THUMBNAIL_DATABASE_USER"], password=env["THUMBNAIL_DATABASE_PASSWORD"],
            database=env["THUMBNAIL_DATABASE_NAME"],
        )
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def read(s3: Minio, bucket: str, key: str) -> bytes:
    response = s3.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def keys(s3: Minio, bucket: str, prefix: str = "") -> set[str]:
    return {o.object_name for o in s3.list_objects(bucket, prefix=prefix or None, recursive=True)
            if o.object_name is not None}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def without_urls(value: Any) -> Any:
    """An API answer without its URLs (they name the server that answered)."""
    if isinstance(value, dict):
        return {k: without_urls(v) for k, v in value.items() if k != "url"}
    if isinstance(value, list):
        return [without_urls(v) for v in value]
    return value


@dataclass
class Source:
    env: dict[str, str]
    finished: list[str]  # job ids: succeeded and failed
    queued: str
    gone: str  # its original deleted before any backup: always skipped
    orphan: str  # an original without a job row

    @property
    def kept(self) -> list[str]:
        return [*self.finished, self.queued]


@pytest.fixture(scope="module")
def source(stack: Stack, service_env: dict[str, str], s3: Minio) -> Source:
    """Jobs made the real way: two succeeded, one failed, one still queued (no worker left to
    take it), one whose original went missing; and an orphan original."""
    worker = stack.start_worker()
    with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": API_KEY},
                      timeout=30) as http:
        made = [
            submit(http, images.encode(images.two_halves(640, 480), "png"),
                   sizes="small,medium", fit="inside"),
            http.post("/v1/jobs", headers={"Idempotency-Key": "order-7"},
                      files={"file": ("x", images.encode(images.two_halves(300, 200), "jpg"))},
                      data={"sizes": "small,t=64x40", "fit": "cover", "format": "webp",
                            "quality": "70"}).json(),
            submit(http, images.encode(images.noise(300, 200), "jpg", Q=95)[:3000],
                   sizes="small"),
        ]
        done = [wait_finished(http, job["id"], stack) for job in made]
        assert [j["status"] for j in done] == ["succeeded", "succeeded", "failed"], done
        worker.stop()
        queued = submit(http, images.encode(images.two_halves(100, 80), "png"), sizes="small")
        gone = submit(http, images.encode(images.two_halves(90, 70), "png"), sizes="small")
    originals = service_env["THUMBNAIL_BUCKET_ORIGINALS"]
    s3.remove_object(originals, f"{gone['id']}/original")
    orphan = f"{uuid.uuid4()}/original"
    s3.put_object(originals, orphan, io.BytesIO(b"no row"), 6)
    return Source(service_env, [j["id"] for j in done], queued["id"], gone["id"], orphan)


@pytest.fixture(scope="module")
def backups(source: Source) -> dict[str, str]:
    """Where this module's backups go (a bucket that does not exist yet: create makes it)."""
    return {"bucket": f"backups-{uuid.uuid4().hex[:8]}", "prefix": "clusters/a",
            "service": "media/thumbs"}


@pytest.fixture
def fresh(postgres: Any, service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The environment of a new, empty service: its own database and (absent) buckets on the
    same PostgreSQL and MinIO, its own queue."""
    suffix = uuid.uuid4().hex[:10]
    postgres.create_database(f"restore_{suffix}")
    yield {**service_env, "THUMBNAIL_DATABASE_NAME": f"restore_{suffix}",
           "THUMBNAIL_BUCKET_ORIGINALS": f"raws-r{suffix}",
           "THUMBNAIL_BUCKET_THUMBNAILS": f"thumbnails-r{suffix}",
           "THUMBNAIL_QUEUE_NAME": f"thumbnails-r{suffix}",
           "THUMBNAIL_PORT": str(free_port())}


def assert_restored_identically(source: Source, target: dict[str, str], s3: Minio) -> None:
    """Every kept job and thumbnail row equal column by column (a queued job: due now instead
    of at its old deadline), every object byte-identical; the skipped job absent."""
    jobs_sql = "SELECT * FROM jobs ORDER BY id"
    before = {str(r["id"]): r for r in query(source.env, jobs_sql)}
    after = {str(r["id"]): r for r in query(target, jobs_sql)}
    assert set(after) == set(source.kept)
    for job_id in source.finished:
        assert after[job_id] == before[job_id]
    waiting, was = after[source.queued], before[source.queued]
    assert waiting["status"] == was["status"] == "queued"
    assert waiting["lease_token"] is None
    assert waiting["lease_expires_at"] <= query(target, "SELECT now() AS t")[0]["t"]
    assert {k: v for k, v in waiting.items() if k != "lease_expires_at"} == {
        k: v for k, v in was.items() if k != "lease_expires_at"}

    thumbs_sql = "SELECT * FROM thumbnails ORDER BY job_id, name"
    source_thumbs = [t for t in query(source.env, thumbs_sql) if str(t["job_id"]) in after]
    restored_thumbs = query(target, thumbs_sql)
    assert restored_thumbs == source_thumbs and len(restored_thumbs) == 4
    for thumb in restored_thumbs:
        data = read(s3, target["THUMBNAIL_BUCKET_THUMBNAILS"], thumb["object_key"])
        assert sha256(data) == thumb["sha256"] and len(data) == thumb["bytes"]
    for job in after.values():
        old = read(s3, source.env["THUMBNAIL_BUCKET_ORIGINALS"], job["original_key"])
        assert read(s3, target["THUMBNAIL_BUCKET_ORIGINALS"], job["original_key"]) == old
    # Nothing else came along: not the orphan, not the skipped job's thumbnails.
    assert keys(s3, target["THUMBNAIL_BUCKET_ORIGINALS"]) == {
        j["original_key"] for j in after.values()}
    assert keys(s3, target["THUMBNAIL_BUCKET_THUMBNAILS"]) == {
        t["object_key"] for t in restored_thumbs}


# --- the tests --------------------------------------------------------------------------------


def test_backup_then_restore_into_a_new_service_is_identical(
    source: Source, backups: dict[str, str], fresh: dict[str, str], s3: Minio,
    tmp_path: Path,
) -> None:
    run = backup("create", source.env, tmp_path, id="first", **backups)
    made = ok(run)
    thumbs = query(source.env, "SELECT * FROM thumbnails WHERE job_id = ANY($1::uuid[])",
                   [uuid.UUID(j) for j in source.kept])
    jobs = query(source.env, "SELECT * FROM jobs WHERE id = ANY($1::uuid[])",
                 [uuid.UUID(j) for j in source.kept])
    size = sum(t["bytes"] for t in thumbs) + sum(j["original_bytes"] for j in jobs)
    assert {k: made[k] for k in ("id", "jobs", "thumbnails", "objects", "bytes", "skipped",
                                 "pruned")} == {
        "id": "first", "jobs": 4, "thumbnails": 4, "objects": 8, "bytes": size, "skipped": 1,
        "pruned": []}
    assert RFC3339_Z.match(made["startedAt"]) and RFC3339_Z.match(made["finishedAt"])
    assert f"job {source.gone} left out of the backup: its originals object" in run.output

    bucket, base = backups["bucket"], "clusters/a/first"
    manifest = json.loads(read(s3, bucket, f"{base}/manifest.json"))
    assert manifest == {
        "format": 1, "id": "first", "service": "media/thumbs", "kind": "on-demand",
        "startedAt": made["startedAt"], "finishedAt": made["finishedAt"],
        "schemaVersion": SCHEMA_VERSION, "jobs": 4, "thumbnails": 4, "objects": 8,
        "bytes": size, "skipped": 1}
    assert keys(s3, bucket, f"{base}/") == {
        f"{base}/manifest.json", f"{base}/jobs.jsonl.gz",
        *(f"{base}/originals/{j['original_key']}" for j in jobs),
        *(f"{base}/thumbnails/{t['object_key']}" for t in thumbs)}  # no orphan, no gone job

    restored = ok(backup("restore", fresh, tmp_path, id="first", **backups))
    assert restored == {"id": "first", "restored": True, "jobs": 4, "thumbnails": 4,
                        "objects": 8, "bytes": size}
    assert_restored_identically(source, fresh, s3)
    [record] = query(fresh, "SELECT * FROM restored_backups")
    assert (record["backup_id"], record["jobs"]) == ("first", 4)
    assert record["source"] == f"s3://{bucket}/{base}/"

    # The restored service serves the jobs as before, and its worker takes the queued job.
    stack = Stack(fresh, tmp_path, int(fresh["THUMBNAIL_PORT"]))
    stack.start_api()
    try:
        with httpx.Client(base_url=stack.base_url, headers={"X-API-Key": API_KEY},
                          timeout=30) as http:
            with httpx.Client(base_url=f"http://127.0.0.1:{source.env['THUMBNAIL_PORT']}",
                              headers={"X-API-Key": API_KEY}, timeout=30) as original:
                for job_id in source.finished:
                    job = http.get(f"/v1/jobs/{job_id}").json()
                    assert without_urls(job) == without_urls(
                        original.get(f"/v1/jobs/{job_id}").json())
                    for thumb in job["thumbnails"]:
                        path = f"/v1/jobs/{job_id}/thumbnails/{thumb['name']}"
                        got = http.get(path)
                        assert got.status_code == 200
                        assert got.content == original.get(path).content
            stack.start_worker()
            done = wait_finished(http, source.queued, stack)
            assert done["status"] == "succeeded", done
    finally:
        stack.stop()


def test_restoring_again_is_a_no_op_and_a_used_database_is_refused(
    source: Source, backups: dict[str, str], fresh: dict[str, str], tmp_path: Path,
) -> None:
    ok(backup("create", source.env, tmp_path, id="again", **backups))
    assert ok(backup("restore", fresh, tmp_path, id="again", **backups))["restored"] is True
    # Every other replica's init container: the same backup, already there.
    assert ok(backup("restore", fresh, tmp_path, id="again", **backups)) == {
        "id": "again", "restored": "already", "jobs": 4, "thumbnails": 0, "objects": 0,
        "bytes": 0}
    assert len(query(fresh, "SELECT id FROM jobs")) == 4

    # A database with jobs that did not come from this backup (the source itself).
    refused = backup("restore", source.env, tmp_path, id="again", **backups)
    total = len(query(source.env, "SELECT id FROM jobs"))
    assert refused.code == 1
    assert refused.report == {"error": (
        f"restore failed: refusing to restore backup again: the database already holds "
        f"{total} jobs; restore into a new ThumbnailService (new volumes), or remove "
        "spec.bootstrap")}
    assert "refusing to restore backup again" in refused.output


def test_an_existing_backup_is_never_overwritten(
    source: Source, backups: dict[str, str], s3: Minio, tmp_path: Path,
) -> None:
    ok(backup("create", source.env, tmp_path, id="once", **backups))
    manifest = read(s3, backups["bucket"], "clusters/a/once/manifest.json")
    again = backup("create", source.env, tmp_path, id="once", **backups)
    assert again.code == 1
    assert again.report == {"error": "create failed: backup once already exists at "
                            f"s3://{backups['bucket']}/clusters/a/once/: choose another id"}
    assert read(s3, backups["bucket"], "clusters/a/once/manifest.json") == manifest

    # A backup that never completed (no manifest: its pod died) is simply made again.
    s3.remove_object(backups["bucket"], "clusters/a/once/manifest.json")
    s3.put_object(backups["bucket"], "clusters/a/once/originals/stale", io.BytesIO(b"x"), 1)
    assert ok(backup("create", source.env, tmp_path, id="once", **backups))["jobs"] == 4


def test_a_wrong_source_fails_clearly_instead_of_backing_up_nothing(
    source: Source, backups: dict[str, str], tmp_path: Path,
) -> None:
    wrong_bucket = {**source.env, "THUMBNAIL_BUCKET_ORIGINALS": "no-such-bucket"}
    run = backup("create", wrong_bucket, tmp_path, id="wrong", **backups)
    assert run.code == 1
    assert run.report == {"error": "create failed: the service's bucket no-such-bucket does "
                          f"not exist on {source.env['THUMBNAIL_S3_ENDPOINT']}: check "
                          "THUMBNAIL_BUCKET_*"}
    no_database = {**source.env, "THUMBNAIL_DATABASE_PORT": str(free_port())}
    run = backup("create", no_database, tmp_path, id="wrong", **backups)
    assert run.code == 1
    assert run.report["error"].startswith("create failed: cannot connect to PostgreSQL at "
                                          "127.0.0.1:"), run.report


def test_a_missing_or_damaged_backup_is_reported_and_restores_nothing(
    source: Source, backups: dict[str, str], fresh: dict[str, str], s3: Minio, tmp_path: Path,
) -> None:
    missing = backup("restore", fresh, tmp_path, id="never-made", **backups)
    assert missing.code == 1
    assert missing.report == {"error": (
        f"restore failed: no backup never-made at s3://{backups['bucket']}/clusters/a/"
        "never-made/ (manifest.json missing: the backup never completed or the id/destination "
        "is wrong)")}

    ok(backup("create", source.env, tmp_path, id="tampered", **backups))
    [thumb] = query(source.env, "SELECT * FROM thumbnails WHERE job_id = $1 AND name = 'small'",
                    uuid.UUID(source.finished[0]))
    key = f"clusters/a/tampered/thumbnails/{thumb['object_key']}"
    data = bytearray(read(s3, backups["bucket"], key))
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    s3.put_object(backups["bucket"], key, io.BytesIO(bytes(data)), len(data))
    damaged = backup("restore", fresh, tmp_path, id="tampered", **backups)
    assert damaged.code == 1
    assert f"job {source.finished[0]}" in damaged.report["error"], damaged.report
    assert f"its row says {thumb['sha256']}" in damaged.report["error"], damaged.report
    # Objects go first, rows last in one transaction: nothing half-restored to trip over.
    assert query(fresh, "SELECT * FROM jobs") == []
    assert query(fresh, "SELECT * FROM restored_backups") == []


def test_retention_prunes_the_oldest_scheduled_backups_of_the_service_only(
    source: Source, backups: dict[str, str], s3: Minio, tmp_path: Path,
) -> None:
    where = {**backups, "prefix": "retention"}
    bucket = where["bucket"]

    def scheduled(backup_id: str, **extra: object) -> dict[str, Any]:
        time.sleep(1.1)  # startedAt has a one-second resolution
        return ok(backup("create", source.env, tmp_path, id=backup_id, scheduled="true",
                         **{**where, **extra}))

    ok(backup("create", source.env, tmp_path, id="manual", **where))  # on-demand: kept
    scheduled("other", service="media/other")  # another service's: kept
    assert scheduled("s1", retention_count=2)["pruned"] == []
    assert scheduled("s2", retention_count=2)["pruned"] == []
    assert scheduled("s3", retention_count=2)["pruned"] == ["s1"]
    assert scheduled("s4", retention_count=2)["pruned"] == ["s2"]
    assert {k.split("/")[1] for k in keys(s3, bucket, "retention/")} == {
        "manual", "other", "s3", "s4"}
    assert json.loads(read(s3, bucket, "retention/other/manifest.json"))["kind"] == "scheduled"

    # By age: everything of this service older than 2 s, except the new one.
    time.sleep(2)
    assert scheduled("s5", retention_max_age_seconds=2)["pruned"] == ["s3", "s4"]
    assert {k.split("/")[1] for k in keys(s3, bucket, "retention/")} == {
        "manual", "other", "s5"}


def test_a_backup_elsewhere_is_streamed_and_restores_identically(
    source: Source, backups: dict[str, str], fresh: dict[str, str], s3: Minio, tmp_path: Path,
) -> None:
    # The same MinIO under another name is "another server": objects stream through us.
    port = source.env["THUMBNAIL_S3_ENDPOINT"].rsplit(":", 1)[1]
    elsewhere = {**backups, "prefix": "remote", "s3_endpoint": f"localhost:{port}",
                 "s3_access_key": source.env["THUMBNAIL_S3_ACCESS_KEY"],
                 "s3_secret_key": source.env["THUMBNAIL_S3_SECRET_KEY"], "concurrency": 2}
    run = backup("create", source.env, tmp_path, id="streamed", **elsewhere)
    made = ok(run)
    assert "on localhost:" in run.output and "streamed" in run.output
    assert (made["jobs"], made["objects"], made["skipped"]) == (4, 8, 1)

    bucket = backups["bucket"]
    copies = keys(s3, bucket, "remote/streamed/")
    for key in copies - {"remote/streamed/manifest.json", "remote/streamed/jobs.jsonl.gz"}:
        kind, _, original = key.removeprefix("remote/streamed/").partition("/")
        own = source.env[f"THUMBNAIL_BUCKET_{kind.upper()}"]
        assert read(s3, bucket, key) == read(s3, own, original)
        assert s3.stat_object(bucket, key).content_type == s3.stat_object(own,
                                                                           original).content_type

    run = backup("restore", fresh, tmp_path, id="streamed", **elsewhere)
    assert ok(run)["restored"] is True and "streamed from localhost:" in run.output
    assert_restored_identically(source, fresh, s3)


def test_originals_swept_during_a_long_restore_are_copied_again(
    source: Source, backups: dict[str, str], fresh: dict[str, str], s3: Minio, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker's sweeper deletes originals without a row once older than the orphan grace;
    a restore that takes longer than that checks its originals again once its rows are in."""
    ok(backup("create", source.env, tmp_path, id="sweep", **backups))
    hurried = {**fresh, "THUMBNAIL_ORPHAN_GRACE_SECONDS": "0.001"}  # every restore is "long"
    assert ok(backup("restore", hurried, tmp_path, id="sweep", **backups))["jobs"] == 4
    assert_restored_identically(source, fresh, s3)

    # As if the sweeper had taken one between the copy and the commit.
    for name, value in {**hurried, "THUMBNAIL_BACKUP_ID": "sweep",
                        **{f"THUMBNAIL_BACKUP_{k.upper()}": v for k, v in backups.items()}
                        }.items():
        monkeypatch.setenv(name, value)
    settings, options = Settings(), BackupSettings()  # type: ignore[call-arg]
    where = Location(options.bucket, options.prefix, options.id)
    swept = f"{source.finished[0]}/original"
    s3.remove_object(fresh["THUMBNAIL_BUCKET_ORIGINALS"], swept)
    client = objects.client(objects.S3Config.service(settings), 4)
    data = read(s3, backups["bucket"], where.jobs_key)
    mover = objects.Mover(client, client, server_side=True)
    assert recopy_missing_originals(mover, settings, where, data, options) == 1
    assert read(s3, fresh["THUMBNAIL_BUCKET_ORIGINALS"], swept) == read(
        s3, source.env["THUMBNAIL_BUCKET_ORIGINALS"], swept)
    assert recopy_missing_originals(mover, settings, where, data, options) == 0


def test_progress_and_reports_of_many_jobs(
    postgres: Any, service_env: dict[str, str], fresh: dict[str, str], s3: Minio,
    tmp_path: Path,
) -> None:
    """200 generated jobs (rows and objects written directly; BACKUP_BENCH_JOBS=n for more):
    a backup and a restore of them, timed (`pytest -s` prints the numbers and logs)."""
    suffix = uuid.uuid4().hex[:8]
    postgres.create_database(f"bulk_{suffix}")
    bulk = {**service_env, "THUMBNAIL_DATABASE_NAME": f"bulk_{suffix}",
            "THUMBNAIL_BUCKET_ORIGINALS": f"raws-b{suffix}",
            "THUMBNAIL_BUCKET_THUMBNAILS": f"thumbnails-b{suffix}"}
    count = int(os.environ.get("BACKUP_BENCH_JOBS", "200"))  # more, to measure
    size = generate_jobs(bulk, s3, jobs=count, original_bytes=400_000, thumbnail_bytes=40_000)
    where = {"bucket": f"bulk-{suffix}"}

    started = time.monotonic()
    run = backup("create", bulk, tmp_path, id="bulk", concurrency=8, **where)
    backed_up = time.monotonic() - started
    made = ok(run)
    assert (made["jobs"], made["thumbnails"], made["objects"], made["bytes"]) == (
        count, 3 * count, 4 * count, size)

    started = time.monotonic()
    again = backup("restore", fresh, tmp_path, id="bulk", concurrency=8, **where)
    took = time.monotonic() - started
    restored = ok(again)
    assert (restored["jobs"], restored["objects"], restored["bytes"]) == (count, 4 * count, size)
    assert len(query(fresh, "SELECT name FROM thumbnails")) == 3 * count

    # The same through this process (another endpoint name: streamed, get -> put).
    port = bulk["THUMBNAIL_S3_ENDPOINT"].rsplit(":", 1)[1]
    started = time.monotonic()
    streamed = ok(backup("create", bulk, tmp_path, id="bulk-streamed", concurrency=8,
                         s3_endpoint=f"localhost:{port}",
                         s3_access_key=bulk["THUMBNAIL_S3_ACCESS_KEY"],
                         s3_secret_key=bulk["THUMBNAIL_S3_SECRET_KEY"], **where))
    streamed_took = time.monotonic() - started
    assert (streamed["objects"], streamed["bytes"]) == (4 * count, size)
    print(f"\n{run.output}{again.output}\n{count} jobs, {4 * count} objects, "
          f"{size / 1e6:.1f} MB (each a process run, start and migrations included): backup "
          f"{backed_up:.2f} s by server-side copies, {streamed_took:.2f} s streamed; restore "
          f"{took:.2f} s by server-side copies")


def generate_jobs(
    env: dict[str, str], s3: Minio, *, jobs: int, original_bytes: int, thumbnail_bytes: int
) -> int:
    """Rows like the service's own (3 thumbnails a job) and random objects; total bytes.
    thumbnail-migrate makes the schema and the buckets."""
    result = subprocess.run([str(Path(sys.executable).parent / "thumbnail-migrate")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    originals, thumbnails = env["THUMBNAIL_BUCKET_ORIGINALS"], env["THUMBNAIL_BUCKET_THUMBNAILS"]
    job_rows, thumb_rows, uploads = [], [], []
    for _ in range(jobs):
        job_id = uuid.uuid4()
        job_rows.append((job_id, "succeeded", "fp", json.dumps({"sizes": []}),
                         f"{job_id}/original", "png", 800, 600, original_bytes))
        uploads.append((originals, f"{job_id}/original", os.urandom(original_bytes)))
        for name in ("small", "medium", "large"):
            data = os.urandom(thumbnail_bytes)
            thumb_rows.append((job_id, name, 10, 10, "png", "image/png", len(data),
                               sha256(data), f"{job_id}/{name}"))
            uploads.append((thumbnails, f"{job_id}/{name}", data))

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda u: s3.put_object(u[0], u[1], io.BytesIO(u[2]), len(u[2])),
                      uploads))

    async def insert() -> None:
        conn = await asyncpg.connect(
            host=env["THUMBNAIL_DATABASE_HOST"], port=int(env["THUMBNAIL_DATABASE_PORT"]),
            user=env["THUMBNAIL_DATABASE_USER"], password=env["THUMBNAIL_DATABASE_PASSWORD"],
            database=env["THUMBNAIL_DATABASE_NAME"])
        try:
            await conn.executemany(
                """INSERT INTO jobs (id, status, request_fingerprint, options, original_key,
                       original_format, original_width, original_height, original_bytes)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""", job_rows)
            await conn.executemany(
                """INSERT INTO thumbnails (job_id, name, width, height, format, content_type,
                       bytes, sha256, object_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
                thumb_rows)
        finally:
            await conn.close()

    asyncio.run(insert())
    return sum(len(u[2]) for u in uploads)
