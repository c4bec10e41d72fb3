"""Originals that no job row will ever point at, removed by the sweeper.

A submission stores the original before it inserts the row. When the database or MinIO stops
answering in between, the client gets a 503 but the object may exist anyway: MinIO finished
the upload after its timeout, or the INSERT was lost (or, kept on purpose by submission.py,
may still commit late). Such an object is an orphan only once it is old enough that no
request can still be creating its row: THUMBNAIL_ORPHAN_GRACE_SECONDS, far above the longest
request (THUMBNAIL_HTTP_BODY_TIMEOUT_SECONDS). Each pass reads one page of the bucket and
continues from there next time, so a big bucket costs a bounded amount per pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from ..repository import JobRepository
from ..storage import Storage

log = logging.getLogger(__name__)
PAGE = 500


@dataclass
class OrphanCollector:
    repository: JobRepository
    storage: Storage
    grace_seconds: float
    _after: str = field(default="")  # where the next page starts ("" = the beginning)

    async def collect_once(self) -> list[str]:
        """One page: deletes the old originals without a job row; returns their keys."""
        page = await self.storage.list_page(self.storage.originals, self._after, PAGE)
        self._after = page[-1][0] if len(page) == PAGE else ""  # wrap around at the end
        cutoff = datetime.now(UTC) - timedelta(seconds=self.grace_seconds)
        candidates = {key: _job_id(key) for key, modified in page if modified < cutoff}
        ids = {job_id for job_id in candidates.values() if job_id is not None}
        known = await self.repository.existing_ids(ids)
        orphans = [key for key, job_id in candidates.items()
                   if job_id is not None and job_id not in known]
        if orphans:
            await self.storage.delete(self.storage.originals, orphans)
            log.warning("sweeper: removed %d original(s) no job refers to: %s",
                        len(orphans), ", ".join(orphans[:5]))
        return orphans


def _job_id(key: str) -> UUID | None:
    """The job an original belongs to (`<job id>/original`); None for a key we never write."""
    head, _, tail = key.partition("/")
    if tail != "original":
        return None
    try:
        return UUID(head)
    except ValueError:
        return None
