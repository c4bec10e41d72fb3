"""Backup rows to JSON lines and back (thumbnail_service.backup.codec): lossless, typed by the
target columns, unfinished jobs requeued (no servers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from thumbnail_service.backup.codec import (
    CodecError,
    LineSpool,
    count_lines,
    decode_row,
    encode_row,
    job_line,
    job_objects,
    read_lines,
    requeued,
    without_jobs,
)

# Column types as information_schema.columns.udt_name reports them for 0001_jobs.sql.
JOB_TYPES = {
    "id": "uuid", "status": "job_status", "created_at": "timestamptz",
    "updated_at": "timestamptz", "started_at": "timestamptz", "finished_at": "timestamptz",
    "attempts": "int4", "error": "text", "idempotency_key": "text",
    "request_fingerprint": "text", "options": "jsonb", "original_key": "text",
    "original_format": "text", "original_width": "int4", "original_height": "int4",
    "original_bytes": "int8", "lease_expires_at": "timestamptz", "lease_token": "uuid",
}
THUMB_TYPES = {
    "job_id": "uuid", "name": "text", "width": "int4", "height": "int4", "format": "text",
    "content_type": "text", "bytes": "int8", "sha256": "text", "object_key": "text",
    "created_at": "timestamptz",
}


def job_row(**changes: Any) -> dict[str, Any]:
    job_id = uuid4()
    row = {
        "id": job_id, "status": "succeeded",
        "created_at": datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        "updated_at": datetime(2024, 3, 1, 1, 0, 0, 1, tzinfo=timezone(timedelta(hours=5))),
        "started_at": datetime(2024, 3, 1, 0, 0, 0, 123456, tzinfo=UTC), "finished_at": None,
        "attempts": 2, "error": "2024-03-01T00:00:00+00:00",  # text that looks like a date
        "idempotency_key": "ключ-✓", "request_fingerprint": "f" * 64,
        "options": {"sizes": [{"name": "s", "width": 1, "height": 2}], "quality": 80,
                    "ratio": 0.1 + 0.2, "nested": {"null": None, "list": [True, "x"]}},
        "original_key": f"{job_id}/original", "original_format": "png",
        "original_width": 800, "original_height": 600, "original_bytes": 2**40,
        "lease_expires_at": datetime(2024, 3, 1, tzinfo=UTC), "lease_token": None,
    }
    row.update(changes)
    return row


def thumb_row(job_id: UUID, name: str) -> dict[str, Any]:
    return {"job_id": job_id, "name": name, "width": 10, "height": 5, "format": "webp",
            "content_type": "image/webp", "bytes": 123, "sha256": "ab" * 32,
            "object_key": f"{job_id}/{name}",
            "created_at": datetime(2024, 3, 1, 0, 0, 1, tzinfo=UTC)}


def as_asyncpg_takes(row: dict[str, Any]) -> dict[str, Any]:
    """What the restore hands to COPY for a row: jsonb as its text."""
    return {k: json.dumps(v) if JOB_TYPES.get(k) == "jsonb" else v for k, v in row.items()}


def test_a_job_line_round_trips_every_value_exactly() -> None:
    job = job_row()
    thumbs = [thumb_row(job["id"], "small"), thumb_row(job["id"], "large")]
    spool = LineSpool()
    spool.add(job_line(job, thumbs))
    [line] = list(read_lines(spool.close()))

    columns = list(JOB_TYPES)
    decoded = dict(zip(columns, decode_row(line["job"], columns, JOB_TYPES), strict=True))
    assert decoded == as_asyncpg_takes(job)
    assert json.loads(decoded["options"]) == job["options"]  # floats and nesting intact
    assert decoded["updated_at"].utcoffset() == timedelta(hours=5)
    assert isinstance(decoded["error"], str)  # typed by the column, not by its looks
    thumb_columns = list(THUMB_TYPES)
    assert [dict(zip(thumb_columns, decode_row(t, thumb_columns, THUMB_TYPES), strict=True))
            for t in line["thumbnails"]] == thumbs


def test_the_encoding_is_plain_json_with_offsets() -> None:
    job = job_row()
    line = json.loads(job_line(job, []))
    assert line["job"]["id"] == str(job["id"])
    assert line["job"]["created_at"] == "2024-02-29T23:59:59.999999+00:00"
    assert line["job"]["options"]["sizes"][0] == {"name": "s", "width": 1, "height": 2}
    assert line["thumbnails"] == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [(datetime(2024, 1, 1), "without time zone"), (b"raw", "bytes"), ({1, 2}, "set")],
)
def test_values_that_would_not_come_back_the_same_are_refused(value: Any, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        encode_row({"c": value})


def test_a_row_must_have_exactly_the_copied_columns() -> None:
    encoded = encode_row(job_row())
    del encoded["error"]
    with pytest.raises(CodecError, match="expected"):
        decode_row(encoded, list(JOB_TYPES), JOB_TYPES)


@pytest.mark.parametrize("status", ["queued", "processing"])
def test_unfinished_jobs_come_back_queued_and_due(status: str) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    job = encode_row(job_row(status=status, lease_token=uuid4()))
    back = requeued(job, now)
    assert (back["status"], back["lease_token"]) == ("queued", None)
    assert back["lease_expires_at"] == now.isoformat()
    untouched = {"status", "lease_token", "lease_expires_at"}
    assert {k: v for k, v in back.items() if k not in untouched} == {
        k: v for k, v in job.items() if k not in untouched}


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_finished_jobs_come_back_unchanged(status: str) -> None:
    job = encode_row(job_row(status=status))
    assert requeued(job, datetime.now(UTC)) == job


def test_a_jobs_objects_are_its_original_then_its_thumbnails() -> None:
    job = job_row()
    line = json.loads(job_line(job, [thumb_row(job["id"], "a"), thumb_row(job["id"], "b")]))
    objects = job_objects(line)
    assert objects.job_id == str(job["id"])
    assert [(t.kind, t.key, t.size, t.sha256) for t in objects.transfers] == [
        ("originals", f"{job['id']}/original", 2**40, None),
        ("thumbnails", f"{job['id']}/a", 123, "ab" * 32),
        ("thumbnails", f"{job['id']}/b", 123, "ab" * 32),
    ]


def test_skipped_jobs_are_cut_out_of_the_jobs_file() -> None:
    jobs = [job_row() for _ in range(3)]
    spool = LineSpool()
    for i, job in enumerate(jobs):
        spool.add(job_line(job, [thumb_row(job["id"], str(n)) for n in range(i)]))
    data = spool.close()
    assert count_lines(data) == (3, 3)
    kept, count, thumbnails = without_jobs(data, {str(jobs[1]["id"])})
    assert (count, thumbnails) == (2, 2)
    assert [line["job"]["id"] for line in read_lines(kept)] == [
        str(jobs[0]["id"]), str(jobs[2]["id"])]
