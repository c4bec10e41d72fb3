"""Which scheduled backups a new one makes obsolete (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from .manifest import Manifest


def select_pruned(
    backups: Iterable[Manifest],
    *,
    service: str,
    keep_id: str,
    now: datetime,
    count: int,
    max_age_seconds: int,
) -> list[str]:
    """Ids to delete, oldest first: this service's scheduled backups beyond the newest `count`
    or started more than `max_age_seconds` ago (0 = no such limit). On-demand backups and
    other services' are never chosen, nor `keep_id`: the backup just made, which counts as
    the newest."""
    mine = [b for b in backups if b.kind == "scheduled" and b.service == service]
    # Newest first, the one just made before all (whatever its clock said); a tie on the
    # second is broken by the finish time, then the id.
    mine.sort(key=lambda b: (b.id == keep_id, b.started_at, b.finished_at, b.id), reverse=True)
    cutoff = now - timedelta(seconds=max_age_seconds)
    pruned = [
        b.id
        for rank, b in enumerate(mine)
        if b.id != keep_id
        and ((count and rank >= count) or (max_age_seconds and b.started_at < cutoff))
    ]
    return pruned[::-1]
