"""Rows to JSON lines and back, losslessly (pure).

A job line is `{"job": {column: value}, "thumbnails": [{column: value}, ...]}` with every
column of both tables (`SELECT *`), so a column added by a later migration is carried without
changing this code. Values are encoded by their Python type (uuid -> str, timestamptz ->
ISO-8601 with offset, jsonb -> the JSON value itself) and decoded by the *target* column's
PostgreSQL type, so a text column holding something date-like stays text.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .layout import Kind

Row = dict[str, Any]
UNFINISHED = frozenset({"queued", "processing"})


class CodecError(ValueError):
    pass


def encode_value(column: str, value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | dict | list):
        return value  # dict / list: jsonb, decoded by the snapshot connection's codec
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:  # a timestamp without time zone would come back shifted
            raise CodecError(f"column {column}: timestamp without time zone")
        return value.isoformat()
    raise CodecError(f"column {column}: cannot back up a {type(value).__name__} value")


def encode_row(row: Mapping[str, Any]) -> Row:
    return {column: encode_value(column, value) for column, value in row.items()}


def decode_value(value: Any, pg_type: str) -> Any:
    """A JSON value to what asyncpg expects for a column of type `pg_type` (udt name)."""
    if value is None:
        return None
    if pg_type == "uuid":
        return UUID(value)
    if pg_type == "timestamptz":
        return datetime.fromisoformat(value)
    if pg_type in ("jsonb", "json"):
        return json.dumps(value)  # asyncpg's default jsonb codec takes the text
    return value


def decode_row(row: Row, columns: Sequence[str], types: Mapping[str, str]) -> tuple[Any, ...]:
    """The values of `columns`, in order, for a COPY into a table with these column types."""
    if set(row) != set(columns):
        raise CodecError(f"row has columns {sorted(row)}, expected {sorted(columns)}")
    return tuple(decode_value(row[c], types[c]) for c in columns)


def job_line(job: Mapping[str, Any], thumbnails: Iterable[Mapping[str, Any]]) -> bytes:
    line = {"job": encode_row(job), "thumbnails": [encode_row(t) for t in thumbnails]}
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def requeued(job: Row, now: datetime) -> Row:
    """A restored job: one that was waiting or running is waiting again, due now, owned by no
    worker, so the sweeper re-enqueues it; a finished one comes back as it was."""
    if job["status"] not in UNFINISHED:
        return job
    return {**job, "status": "queued", "lease_token": None, "lease_expires_at": now.isoformat()}


@dataclass(frozen=True)
class Transfer:
    kind: Kind
    key: str  # in the service's bucket of this kind
    size: int  # from the row
    sha256: str | None  # thumbnails only


@dataclass(frozen=True)
class JobObjects:
    job_id: str
    transfers: tuple[Transfer, ...]


def job_objects(line: Row) -> JobObjects:
    """The objects a job line needs: its original first, then its thumbnails."""
    job = line["job"]
    transfers = [Transfer("originals", job["original_key"], job["original_bytes"], None)]
    transfers += [
        Transfer("thumbnails", t["object_key"], t["bytes"], t["sha256"])
        for t in line["thumbnails"]
    ]
    return JobObjects(str(job["id"]), tuple(transfers))


class LineSpool:
    """JSON lines gzip-compressed in memory: a backup holds its rows as compressed text
    (a few hundred bytes a job) rather than as Python objects."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._gzip = gzip.GzipFile(fileobj=self._buffer, mode="wb", compresslevel=6, mtime=0)
        self.lines = 0

    def add(self, line: bytes) -> None:
        self._gzip.write(line)
        self.lines += 1

    def close(self) -> bytes:
        self._gzip.close()
        return self._buffer.getvalue()


def raw_lines(data: bytes) -> Iterator[bytes]:
    with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as lines:
        for raw in lines:
            if raw.strip():
                yield raw


def read_lines(data: bytes) -> Iterator[Row]:
    for raw in raw_lines(data):
        yield json.loads(raw)


def without_jobs(data: bytes, skipped: Collection[str]) -> tuple[bytes, int, int]:
    """A jobs file without the lines of `skipped` job ids: (gzip data, jobs, thumbnails)."""
    spool = LineSpool()
    thumbnails = 0
    for raw in raw_lines(data):
        line = json.loads(raw)
        if line["job"]["id"] in skipped:
            continue
        spool.add(raw)
        thumbnails += len(line["thumbnails"])
    return spool.close(), spool.lines, thumbnails


def count_lines(data: bytes) -> tuple[int, int]:
    """(jobs, thumbnails) in a jobs file."""
    jobs = thumbnails = 0
    for line in read_lines(data):
        jobs += 1
        thumbnails += len(line["thumbnails"])
    return jobs, thumbnails
