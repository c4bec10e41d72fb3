"""PostgreSQL job store (asyncpg). Every state transition is guarded in SQL.

Allowed moves: queued -> processing (claim), processing -> succeeded | failed | queued
(retry, or the sweeper taking an expired lease back), queued -> failed. Finished jobs never
move. Worker-side moves also require the lease token handed out by the claim, so a worker
that lost its lease (and a stale or duplicate message) cannot touch a job another worker owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from .errors import DependencyUnavailable
from .jobs import CallbackAttempt, JobRecord, JobStatus, NewJob, ThumbnailRecord
from .migrate import load_migrations
from .settings import Settings

_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # server shutting down / starting up
    # Wrong password or role: the server took new credentials (a rotation restarts it with
    # them) before this pod rolled onto them. Unavailable to us, not a bug in the request.
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    # Too many connections (old and new pods at once during a rollout), out of memory or
    # disk: the server cannot take us now.
    asyncpg.exceptions.InsufficientResourcesError,
)
CREATE_ATTEMPTS = 3  # INSERT tries while the job holding an idempotency key keeps vanishing
# "Recent" throughput: jobs finished within this window (jobs_finished_at_idx keeps it cheap).
THROUGHPUT_WINDOW_SECONDS = 300
LATEST_SCHEMA_VERSION = max(m.version for m in load_migrations())
# A finishing job with a callback URL puts its webhook in the outbox (migration 0006).
_CALLBACK_DUE = """callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END,
                   callback_due_at = CASE WHEN callback_url IS NULL THEN NULL ELSE now() END"""


@dataclass(frozen=True)
class QueueState:
    oldest_since: datetime | None  # submission time of the oldest job still `queued`
    oldest_age_seconds: float | None
    queued: int
    finished_recently: int  # jobs finished in the last THROUGHPUT_WINDOW_SECONDS


# How many of the latest rendered jobs teach what a format costs: enough to average out one
# odd image, few enough that a changed mix or worker size shows within minutes.
COST_SAMPLE_JOBS = 2000
# A job's cost unit: its source's megapixels times the sizes it asks for (decoding the source
# dominates, and every size is another resize and encode).
_UNITS_SQL = (
    "original_width::float8 * original_height / 1e6 * jsonb_array_length(options->'sizes')"
)


@dataclass(frozen=True)
class FormatDemand:
    """Pending work and the learned cost of one requested output format ("auto" included)."""

    format: str
    pending_jobs: int  # queued or processing
    pending_units: float  # their megapixel-renders (_UNITS_SQL)
    sampled_jobs: int  # recently rendered jobs of this format that taught `seconds_per_unit`
    seconds_per_unit: float | None  # render seconds per megapixel-render; None: none sampled


@dataclass(frozen=True)
class Demand:
    """What the workers have to do and what it costs, for the operator's autoscaler."""

    formats: tuple[FormatDemand, ...]
    # Median seconds of a first attempt that were not rendering (download, upload, record).
    overhead_seconds_per_job: float | None


class IdempotencyKeyContended(Exception):
    """The job holding this idempotency key was deleted and recreated under us, repeatedly."""

    def __init__(self, key: str | None) -> None:
        super().__init__(f"idempotency key {key!r} kept changing hands")
        self.key = key


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """A lazy pool: no connection is made until first use, so processes start while the
    database is down and report it as a 503 / retry instead of crashing."""
    timeout = settings.dependency_timeout_seconds
    pool = asyncpg.create_pool(
        host=settings.database_host,
        port=settings.database_port,
        database=settings.database_name,
        user=settings.database_user,
        password=settings.database_password.get_secret_value() or None,
        min_size=0,
        max_size=settings.database_pool_max_size,
        max_inactive_connection_lifetime=60,
        timeout=timeout,  # connect timeout
        command_timeout=timeout,
        init=_init_connection,
    )
    return await pool


class JobRepository:
    def __init__(
        self, pool: asyncpg.Pool, *, lease_seconds: float, timeout_seconds: float = 3.0
    ) -> None:
        self._pool = pool
        self._lease = lease_seconds
        self._timeout = timeout_seconds

    @classmethod
    def from_settings(cls, pool: asyncpg.Pool, settings: Settings) -> JobRepository:
        return cls(pool, lease_seconds=settings.job_lease_seconds,
                   timeout_seconds=settings.dependency_timeout_seconds)

    def connection(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """A pooled connection for one bounded operation, its failures as
        DependencyUnavailable (for other tables' small stores: keys.py)."""
        return self._connection()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one operation, all of it (acquiring or connecting, every
        statement, giving the connection back) within `timeout_seconds`.

        asyncpg alone bounds each statement, but after a timeout it cancels the query over a
        second connection and, on release, waits for that cancel and resets the session: a
        hung server held a request for several timeouts. Here a connection whose operation
        ran out of time is terminated instead (closed at once; the pool opens a new one)."""
        conn: asyncpg.Connection | None = None
        released = False
        try:
            async with asyncio.timeout(self._timeout):
                conn = await self._pool.acquire()
                try:
                    yield conn
                except (asyncio.CancelledError, TimeoutError):
                    conn.terminate()  # stopped mid-statement: its state is unknown
                    raise
                finally:
                    await self._pool.release(conn)
                    released = True
        except TimeoutError as exc:
            if conn is not None and not released:
                # Timed out while being given back (the pool finishes that in the
                # background): close it, so that the pool stops waiting for the server.
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
            raise DependencyUnavailable(
                "postgresql", f"no answer within {self._timeout:g}s"
            ) from exc
        except _CONNECTION_ERRORS as exc:
            raise DependencyUnavailable("postgresql", _describe(exc)) from exc
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedObjectError) as exc:
            raise DependencyUnavailable(
                "postgresql", f"schema missing ({exc}): run thumbnail-migrate"
            ) from exc

    async def ping(self) -> None:
        """Reachable *and* migrated: readiness fails until thumbnail-migrate has run."""
        async with self._connection() as conn:
            version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
        if version is None or version < LATEST_SCHEMA_VERSION:
            raise DependencyUnavailable(
                "postgresql",
                f"schema at version {version or 0}, this release needs "
                f"{LATEST_SCHEMA_VERSION}: run thumbnail-migrate",
            )

    # --- API side -----------------------------------------------------------------------

    async def create(self, job: NewJob) -> tuple[JobRecord, bool]:
        """Insert a queued job; with an idempotency key already used, return that job and
        False instead (the caller compares fingerprints).

        Any string is a key, the empty one too (only None means "no key"). If the job holding
        the key is deleted between our INSERT and our SELECT, the INSERT is tried again, a
        bounded number of times (a loop, not a recursion); a key that keeps changing hands
        raises IdempotencyKeyContended."""
        for _ in range(CREATE_ATTEMPTS):
            async with self._connection() as conn:
                row = await conn.fetchrow(
                    """INSERT INTO jobs (id, idempotency_key, request_fingerprint, options,
                           original_key, original_format, original_width, original_height,
                           original_bytes, lease_expires_at, callback_url, tenant)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                               now() + make_interval(secs => $10), $11, $12)
                       ON CONFLICT (tenant, idempotency_key) DO NOTHING
                       RETURNING *""",
                    job.id,
                    job.idempotency_key,
                    job.request_fingerprint,
                    job.options.model_dump(mode="json"),
                    job.original_key,
                    job.original_format,
                    job.original_width,
                    job.original_height,
                    job.original_bytes,
                    self._lease,
                    job.callback_url,
                    job.tenant,
                )
                if row is not None:
                    return JobRecord.from_row(row), True
            if job.idempotency_key is not None:  # NULL keys never conflict
                existing = await self.find_by_idempotency_key(job.idempotency_key, job.tenant)
                if existing is not None:
                    return existing, False
        raise IdempotencyKeyContended(job.idempotency_key)

    async def find_by_idempotency_key(self, key: str, tenant: str) -> JobRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM jobs WHERE tenant = $1 AND idempotency_key = $2", tenant, key)
            return (
                None if row is None else JobRecord.from_row(row, await _thumbnails(conn, row["id"]))
            )

    async def get(self, job_id: UUID) -> JobRecord | None:
        """The job and its thumbnails in one round trip (the status read clients poll)."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                """SELECT j.*, (SELECT jsonb_agg(to_jsonb(t) ORDER BY t.width * t.height, t.name)
                                FROM thumbnails t WHERE t.job_id = j.id) AS thumbnail_rows,
                              (SELECT jsonb_agg(to_jsonb(w) ORDER BY w.attempt)
                                FROM webhook_attempts w WHERE w.job_id = j.id) AS callback_rows
                   FROM jobs j WHERE j.id = $1""",
                job_id,
            )
        if row is None:
            return None
        thumbs = tuple(_thumbnail_from_row(t) for t in row["thumbnail_rows"] or ())
        tries = tuple(_attempt_from_row(a) for a in row["callback_rows"] or ())
        return JobRecord.from_row(row, thumbs, tries)

    async def list_jobs(
        self, *, tenant: str, status: JobStatus | None, before: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[JobRecord]:
        """The tenant's jobs, newest first; `before` is the (created_at, id) keyset cursor of
        the last page."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                """SELECT * FROM jobs
                   WHERE tenant = $5 AND ($1::job_status IS NULL OR status = $1)
                     AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
                   ORDER BY created_at DESC, id DESC
                   LIMIT $4""",
                status,
                before[0] if before else None,
                before[1] if before else None,
                limit,
                tenant,
            )
            thumbs = await _thumbnails_for(conn, [r["id"] for r in rows])
            return [JobRecord.from_row(r, thumbs.get(r["id"], ())) for r in rows]

    async def tenant_usage(self, tenant: str) -> int:
        """Bytes the tenant stores: its originals and thumbnails (renditions are a cache)."""
        async with self._connection() as conn:
            used = await conn.fetchval(
                """SELECT coalesce((SELECT sum(original_bytes) FROM jobs WHERE tenant = $1), 0)
                        + coalesce((SELECT sum(t.bytes) FROM thumbnails t
                                    JOIN jobs j ON j.id = t.job_id WHERE j.tenant = $1), 0)""",
                tenant,
            )
        return int(used)

    async def delete(self, job_id: UUID) -> JobRecord | None:
        """Delete the job row (thumbnail rows cascade); returns it so objects can be removed."""
        async with self._connection() as conn, conn.transaction():
            thumbs = await _thumbnails(conn, job_id)
            row = await conn.fetchrow("DELETE FROM jobs WHERE id = $1 RETURNING *", job_id)
            return None if row is None else JobRecord.from_row(row, thumbs)

    async def count_by_status(self) -> dict[JobStatus, int]:
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(r["status"]): r["n"] for r in rows})
        return counts

    async def queue_state(self) -> QueueState:
        """The backlog and the recent throughput, from PostgreSQL (its clock for every time).
        A growing oldest-job age with no live worker means nothing is processing."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                """SELECT q.since, extract(epoch FROM now() - q.since)::float8 AS age, q.queued,
                          (SELECT count(*) FROM jobs
                           WHERE finished_at > now() - make_interval(secs => $1)) AS finished
                   FROM (SELECT min(created_at) AS since, count(*) AS queued
                         FROM jobs WHERE status = 'queued') AS q""",
                float(THROUGHPUT_WINDOW_SECONDS),
            )
        assert row is not None  # an aggregate always returns a row
        since = row["since"]
        return QueueState(
            oldest_since=since,
            oldest_age_seconds=None if since is None else max(float(row["age"]), 0.0),
            queued=int(row["queued"]),
            finished_recently=int(row["finished"]),
        )

    async def demand(self) -> Demand:
        """Pending jobs by requested format with their cost units, and the seconds per unit
        the latest COST_SAMPLE_JOBS rendered jobs took (render_seconds, as their workers
        measured it)."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"""WITH recent AS (
                        SELECT options->>'format' AS format, render_seconds::float8 AS seconds,
                               {_UNITS_SQL} AS units,
                               CASE WHEN attempts = 1 THEN extract(epoch FROM
                                    finished_at - started_at)::float8 - render_seconds
                               END AS overhead
                        FROM jobs WHERE finished_at IS NOT NULL AND render_seconds IS NOT NULL
                        ORDER BY finished_at DESC LIMIT $1),
                    learned AS (
                        SELECT format, count(*) AS sampled,
                               sum(seconds) / nullif(sum(units), 0) AS rate
                        FROM recent GROUP BY format),
                    pending AS (
                        SELECT options->>'format' AS format, count(*) AS jobs,
                               sum({_UNITS_SQL}) AS units
                        FROM jobs WHERE status IN ('queued', 'processing') GROUP BY 1)
                    SELECT format, coalesce(p.jobs, 0) AS jobs, coalesce(p.units, 0) AS units,
                           coalesce(l.sampled, 0) AS sampled, l.rate,
                           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY overhead)
                            FROM recent) AS overhead
                    FROM pending p FULL OUTER JOIN learned l USING (format)
                    ORDER BY format""",
                COST_SAMPLE_JOBS,
            )
        formats = tuple(
            FormatDemand(
                format=str(row["format"]), pending_jobs=int(row["jobs"]),
                pending_units=float(row["units"]), sampled_jobs=int(row["sampled"]),
                seconds_per_unit=None if row["rate"] is None else float(row["rate"]),
            )
            for row in rows
        )
        # The same for every row; there is none when no job is pending or was rendered.
        overhead = rows[0]["overhead"] if rows else None
        return Demand(formats, None if overhead is None else max(float(overhead), 0.0))

    async def existing_ids(self, ids: Collection[UUID]) -> set[UUID]:
        """Which of these job ids have a row (for the orphan collector)."""
        if not ids:
            return set()
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT id FROM jobs WHERE id = ANY($1::uuid[])", list(ids))
        return {row["id"] for row in rows}

    # --- worker side ----------------------------------------------------------------------

    async def claim(self, job_id: UUID) -> JobRecord | None:
        """queued -> processing with a fresh lease token; None if the job is gone, finished
        or owned by another worker (a duplicate or stale message: just drop it)."""
        async with self._connection() as conn:
            row = await conn.fetchrow(
                """UPDATE jobs SET status = 'processing', attempts = attempts + 1,
                       started_at = coalesce(started_at, now()), updated_at = now(),
                       lease_token = $2,
                       lease_expires_at = now() + make_interval(secs => $3)
                   WHERE id = $1 AND status = 'queued'
                   RETURNING *""",
                job_id,
                uuid4(),
                self._lease,
            )
            return None if row is None else JobRecord.from_row(row)

    async def renew_lease(self, job_id: UUID, token: UUID) -> bool:
        async with self._connection() as conn:
            result = await conn.execute(
                """UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3)
                   WHERE id = $1 AND status = 'processing' AND lease_token = $2""",
                job_id,
                token,
                self._lease,
            )
        return _affected(result) == 1

    async def succeed(
        self, job_id: UUID, token: UUID, thumbnails: Sequence[ThumbnailRecord],
        placeholder: str | None = None, render_seconds: float | None = None,
    ) -> bool:
        """processing -> succeeded and the thumbnail rows, atomically (upsert: a redelivered
        job overwrites rows exactly like it overwrites objects). `render_seconds` teaches the
        autoscaler what the job's format costs (`demand`)."""
        async with self._connection() as conn, conn.transaction():
            result = await conn.execute(
                f"""UPDATE jobs SET status = 'succeeded', error = NULL, finished_at = now(),
                       updated_at = now(), lease_token = NULL, placeholder = $3,
                       render_seconds = $4, {_CALLBACK_DUE}
                   WHERE id = $1 AND status = 'processing' AND lease_token = $2""",
                job_id,
                token,
                placeholder,
                render_seconds,
            )
            if _affected(result) != 1:
                return False
            await conn.executemany(
                """INSERT INTO thumbnails (job_id, name, width, height, format, content_type,
                       bytes, sha256, object_key)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                   ON CONFLICT (job_id, name) DO UPDATE SET width = excluded.width,
                       height = excluded.height, format = excluded.format,
                       content_type = excluded.content_type, bytes = excluded.bytes,
                       sha256 = excluded.sha256, object_key = excluded.object_key,
                       created_at = now()""",
                [
                    (
                        job_id,
                        t.name,
                        t.width,
                        t.height,
                        t.format,
                        t.content_type,
                        t.bytes,
                        t.sha256,
                        t.object_key,
                    )
                    for t in thumbnails
                ],
            )
            return True

    async def fail(self, job_id: UUID, token: UUID, error: str) -> bool:
        async with self._connection() as conn:
            result = await conn.execute(
                f"""UPDATE jobs SET status = 'failed', error = $3, finished_at = now(),
                       updated_at = now(), lease_token = NULL, {_CALLBACK_DUE}
                   WHERE id = $1 AND status = 'processing' AND lease_token = $2""",
                job_id,
                token,
                error,
            )
        return _affected(result) == 1

    # --- completion webhooks (the sweeper delivers them: webhooks/delivery.py) ----------

    async def claim_due_callbacks(self, limit: int, lease_seconds: float) -> list[JobRecord]:
        """Up to `limit` jobs whose webhook is due, each leased for `lease_seconds`: its due
        time moves forward, so a deliverer that dies leaves it due again then."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                """UPDATE jobs SET callback_due_at = now() + make_interval(secs => $2)
                   WHERE id IN (SELECT id FROM jobs
                                WHERE callback_state = 'pending' AND callback_due_at <= now()
                                ORDER BY callback_due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                   RETURNING id""",
                limit,
                lease_seconds,
            )
        jobs = [await self.get(row["id"]) for row in rows]
        return [job for job in jobs if job is not None]

    async def record_callback_attempt(
        self,
        job_id: UUID,
        attempt: CallbackAttempt,
        state: str,
        retry_in_seconds: float = 0.0,
    ) -> None:
        """One delivery attempt, and what follows: 'pending' (again in `retry_in_seconds`),
        'delivered' or 'failed'."""
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO webhook_attempts (job_id, attempt, attempted_at, status_code,
                       error)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, attempt) DO NOTHING""",
                job_id,
                attempt.attempt,
                attempt.attempted_at,
                attempt.status_code,
                attempt.error,
            )
            await conn.execute(
                """UPDATE jobs SET callback_state = $2,
                       callback_due_at = CASE WHEN $2 = 'pending'
                           THEN now() + make_interval(secs => $3) END
                   WHERE id = $1 AND callback_state = 'pending'""",
                job_id,
                state,
                retry_in_seconds,
            )

    async def release_for_retry(
        self, job_id: UUID, token: UUID, error: str, delay_seconds: float
    ) -> bool:
        """processing -> queued after a transient failure; the pickup deadline allows for the
        retry delay so the sweeper does not race the scheduled retry."""
        async with self._connection() as conn:
            result = await conn.execute(
                """UPDATE jobs SET status = 'queued', error = $3, updated_at = now(),
                       lease_token = NULL,
                       lease_expires_at = now() + make_interval(secs => $4::float8 + $5::float8)
                   WHERE id = $1 AND status = 'processing' AND lease_token = $2""",
                job_id,
                token,
                error,
                delay_seconds,
                self._lease,
            )
        return _affected(result) == 1

    async def reclaim_expired(self, limit: int = 100) -> list[UUID]:
        """Jobs whose pickup deadline or lease passed: back to queued with a new deadline.
        SKIP LOCKED lets several sweepers run at once without handing out the same job."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                """UPDATE jobs SET status = 'queued', lease_token = NULL, updated_at = now(),
                       lease_expires_at = now() + make_interval(secs => $2)
                   WHERE id IN (
                       SELECT id FROM jobs
                       WHERE status IN ('queued', 'processing') AND lease_expires_at < now()
                       ORDER BY lease_expires_at
                       LIMIT $1
                       FOR UPDATE SKIP LOCKED)
                   RETURNING id""",
                limit,
                self._lease,
            )
        return [r["id"] for r in rows]


async def _thumbnails(conn: asyncpg.Connection, job_id: UUID) -> tuple[ThumbnailRecord, ...]:
    return (await _thumbnails_for(conn, [job_id])).get(job_id, ())


async def _thumbnails_for(
    conn: asyncpg.Connection, job_ids: list[UUID]
) -> dict[UUID, tuple[ThumbnailRecord, ...]]:
    if not job_ids:
        return {}
    rows = await conn.fetch(
        """SELECT * FROM thumbnails WHERE job_id = ANY($1::uuid[])
           ORDER BY job_id, width * height, name""",
        job_ids,
    )
    grouped: dict[UUID, list[ThumbnailRecord]] = {}
    for r in rows:
        grouped.setdefault(r["job_id"], []).append(_thumbnail_from_row(r))
    return {k: tuple(v) for k, v in grouped.items()}


def _attempt_from_row(row: Any) -> CallbackAttempt:
    return CallbackAttempt(
        attempt=row["attempt"],
        attempted_at=datetime.fromisoformat(row["attempted_at"]),  # (jsonb: ISO 8601 text)
        status_code=row["status_code"],
        error=row["error"],
    )


def _thumbnail_from_row(row: Any) -> ThumbnailRecord:
    return ThumbnailRecord(
        name=row["name"],
        width=row["width"],
        height=row["height"],
        format=row["format"],
        content_type=row["content_type"],
        bytes=row["bytes"],
        sha256=row["sha256"],
        object_key=row["object_key"],
    )


def _affected(status: str) -> int:
    # asyncpg returns the command tag, e.g. "UPDATE 1".
    return int(status.rsplit(" ", 1)[-1])


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
