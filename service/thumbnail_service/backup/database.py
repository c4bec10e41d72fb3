"""PostgreSQL side of backups and restores (asyncpg)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ..settings import Settings
from .codec import LineSpool, Row, decode_row, job_line
from .errors import BackupError, describe

log = logging.getLogger(__name__)
# Arbitrary but fixed, distinct from migrate.MIGRATION_LOCK_ID: every replica's restore init
# container contends for it, so one restores and the others then find it recorded.
RESTORE_LOCK_ID = 0x7468756D6252  # "thumbR"
PAGE = 1000


async def connect(settings: Settings) -> asyncpg.Connection:
    # No command timeout: reading or loading every row may take long, unlike an API call.
    try:
        return await asyncpg.connect(
            host=settings.database_host,
            port=settings.database_port,
            database=settings.database_name,
            user=settings.database_user,
            password=settings.database_password.get_secret_value() or None,
            timeout=max(settings.dependency_timeout_seconds, 10),
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise BackupError(
            f"cannot connect to PostgreSQL at {settings.database_host}:"
            f"{settings.database_port}/{settings.database_name}: {describe(exc)}"
        ) from exc


@dataclass(frozen=True)
class Snapshot:
    schema_version: int
    jobs: bytes  # gzip JSON lines (codec.job_line), every job
    job_count: int
    thumbnail_count: int


async def snapshot(conn: asyncpg.Connection) -> Snapshot:
    """Every job and thumbnail row as of one instant: a REPEATABLE READ transaction sees a
    single snapshot across all its statements, while the service keeps writing."""
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    spool = LineSpool()
    thumbnails = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
        after = None
        while True:  # keyset pages in id order: bounded memory, no server-side cursor
            # Two statements, not "$1 IS NULL OR id > $1", which would defeat the index.
            jobs = await (
                conn.fetch("SELECT * FROM jobs ORDER BY id LIMIT $1", PAGE)
                if after is None
                else conn.fetch("SELECT * FROM jobs WHERE id > $1 ORDER BY id LIMIT $2",
                                after, PAGE)
            )
            if not jobs:
                break
            ids = [j["id"] for j in jobs]
            rows = await conn.fetch(
                "SELECT * FROM thumbnails WHERE job_id = ANY($1::uuid[]) ORDER BY job_id, name",
                ids,
            )
            grouped: dict[Any, list[asyncpg.Record]] = {}
            for row in rows:
                grouped.setdefault(row["job_id"], []).append(row)
            for job in jobs:
                spool.add(job_line(job, grouped.get(job["id"], ())))
            thumbnails += len(rows)
            after = ids[-1]
            if spool.lines % (PAGE * 50) == 0:
                log.info("snapshot: %d jobs read", spool.lines)
    return Snapshot(int(version or 0), spool.close(), spool.lines, thumbnails)


# --- restore ------------------------------------------------------------------------------


async def restored(conn: asyncpg.Connection, backup_id: str) -> int | None:
    """The job count recorded when this backup was restored here; None if it never was."""
    value = await conn.fetchval(
        "SELECT jobs FROM restored_backups WHERE backup_id = $1", backup_id
    )
    return None if value is None else int(value)


async def count_jobs(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM jobs"))


async def column_types(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        """SELECT column_name, udt_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = $1""",
        table,
    )
    return {r["column_name"]: r["udt_name"] for r in rows}


async def now(conn: asyncpg.Connection) -> datetime:
    value: datetime = await conn.fetchval("SELECT now()")
    return value


async def load(
    conn: asyncpg.Connection,
    jobs: Iterable[Row],
    thumbnails: Iterable[Row],
    *,
    backup_id: str,
    job_count: int,
    source: str,
) -> None:
    """Every row and the restored_backups record in one transaction: all or nothing. COPY
    (binary) is the fastest way in; the rows are decoded for the target's column types."""
    async with conn.transaction():
        # Checked before the objects were copied; again here, where it counts (a pod of the
        # old release may still serve during a rollout).
        present = await count_jobs(conn)
        if present:
            raise BackupError(
                f"refusing to restore backup {backup_id}: {present} jobs appeared in the "
                "database during the restore"
            )
        for table, rows in (("jobs", jobs), ("thumbnails", thumbnails)):
            await _copy(conn, table, rows)
        await conn.execute(
            "INSERT INTO restored_backups (backup_id, jobs, source) VALUES ($1, $2, $3)",
            backup_id, job_count, source,
        )


async def _copy(conn: asyncpg.Connection, table: str, rows: Iterable[Row]) -> None:
    types = await column_types(conn, table)
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return
    columns = list(first)
    unknown = [c for c in columns if c not in types]
    if unknown:
        raise RuntimeError(f"the {table} table has no column {', '.join(unknown)}")

    def records() -> Iterable[tuple[Any, ...]]:
        yield decode_row(first, columns, types)
        for row in iterator:
            yield decode_row(row, columns, types)

    await conn.copy_records_to_table(table, records=records(), columns=columns)
