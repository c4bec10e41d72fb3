"""Which scheduled backups retention deletes (thumbnail_service.backup.retention)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from thumbnail_service.backup.manifest import Kind, Manifest
from thumbnail_service.backup.retention import select_pruned

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def made(backup_id: str, hours_ago: float, kind: Kind = "scheduled",
         service: str = "ns/svc") -> Manifest:
    started = NOW - timedelta(hours=hours_ago)
    return Manifest(id=backup_id, service=service, kind=kind, started_at=started,
                    finished_at=started + timedelta(minutes=1), schema_version=2, jobs=0,
                    thumbnails=0, objects=0, bytes=0, skipped=0)


BACKUPS = [
    made("new", 0), made("h1", 1), made("h2", 2), made("h3", 3), made("h30", 30),
    made("manual-old", 50, kind="on-demand"), made("theirs-old", 60, service="ns/other"),
]


def prune(count: int = 0, max_age_seconds: int = 0, keep_id: str = "new",
          backups: list[Manifest] = BACKUPS) -> list[str]:
    return select_pruned(backups, service="ns/svc", keep_id=keep_id, now=NOW, count=count,
                         max_age_seconds=max_age_seconds)


def test_by_count_the_oldest_scheduled_ones_of_this_service_go_oldest_first() -> None:
    assert prune(count=3) == ["h30", "h3"]
    assert prune(count=1) == ["h30", "h3", "h2", "h1"]
    assert prune(count=10) == []


def test_by_age_those_started_before_the_cutoff_go() -> None:
    assert prune(max_age_seconds=int(2.5 * 3600)) == ["h30", "h3"]
    assert prune(max_age_seconds=24 * 3600) == ["h30"]


def test_both_limits_add_up() -> None:
    assert prune(count=4, max_age_seconds=int(2.5 * 3600)) == ["h30", "h3"]
    assert prune(count=2, max_age_seconds=24 * 3600) == ["h30", "h3", "h2"]


def test_no_limit_prunes_nothing() -> None:
    assert prune() == []


def test_the_backup_just_made_is_never_pruned() -> None:
    # Its clock may be behind the others' (started "earlier" than an existing one).
    backups = [made("late-clock", 5), made("h1", 1), made("h2", 2)]
    assert prune(count=1, keep_id="late-clock", backups=backups) == ["h2", "h1"]
    assert prune(max_age_seconds=60, keep_id="late-clock", backups=backups) == ["h2", "h1"]


def test_on_demand_and_other_services_backups_are_kept_even_when_old() -> None:
    doomed = prune(count=1, max_age_seconds=1)
    assert "manual-old" not in doomed and "theirs-old" not in doomed


def test_same_second_starts_are_ordered_by_finish_then_id() -> None:
    started = NOW - timedelta(hours=1)
    a = made("a", 1).model_copy(update={"finished_at": started + timedelta(minutes=5)})
    b = made("b", 1).model_copy(update={"finished_at": started + timedelta(minutes=2)})
    assert prune(count=1, keep_id="x", backups=[a, b]) == ["b"]
