"""Five-field cron schedules (controller/cron.py) and when a scheduled backup is due."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from thumbnail_operator.api.v1 import parse_spec
from thumbnail_operator.controller.backups import due_backup, scheduled_name
from thumbnail_operator.controller.cron import Schedule

NOW = datetime(2026, 12, 7, 13, 47, 30, tzinfo=UTC)  # a Monday


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("expression", "latest"), [
    ("* * * * *", at(2026, 12, 7, 13, 47)),
    ("0 3 * * *", at(2026, 12, 7, 3, 0)),
    ("*/15 * * * *", at(2026, 12, 7, 13, 45)),
    ("50 13 * * *", at(2026, 12, 6, 13, 50)),
    ("0 0 29 2 *", at(2024, 2, 29, 0, 0)),
    ("30 4 * * 0", at(2026, 12, 6, 4, 30)),  # Sunday
    ("30 4 * * 7", at(2026, 12, 6, 4, 30)),  # 7 is Sunday too
    ("0 0 1 * 1", at(2026, 12, 7, 0, 0)),  # the 1st OR a Monday (cron's rule)
    ("0 0 1-3 11 *", at(2026, 11, 3, 0, 0)),
    ("5,10 1 * * *", at(2026, 12, 7, 1, 10)),
])
def test_the_latest_time_a_schedule_fired(expression: str, latest: datetime) -> None:
    assert Schedule.parse(expression).latest(NOW) == latest


def test_a_schedule_that_never_fires_has_no_latest_time() -> None:
    assert Schedule.parse("0 0 30 2 *").latest(NOW) is None


@pytest.mark.parametrize("expression", ["* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
                                        "*/0 * * * *", "a * * * *", "5-1 * * * *"])
def test_a_bad_schedule_is_refused_with_the_reason(expression: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        Schedule.parse(expression)


def test_a_backup_is_due_once_per_scheduled_time() -> None:
    spec = parse_spec({"backup": {"schedule": "0 * * * *"}})
    created = at(2026, 12, 7, 10, 30)
    assert due_backup(spec, created, None, NOW) == at(2026, 12, 7, 13, 0)
    assert due_backup(spec, created, at(2026, 12, 7, 13, 0), NOW) is None  # made already
    # Missed times (operator down) collapse into the latest one.
    assert due_backup(spec, created, at(2026, 12, 7, 11, 0), NOW) == at(2026, 12, 7, 13, 0)
    # Nothing is due for a time before the service existed.
    assert due_backup(spec, at(2026, 12, 7, 13, 10), None, NOW) is None
    assert due_backup(parse_spec({}), created, None, NOW) is None  # no schedule


def test_a_scheduled_backup_is_named_for_its_time() -> None:
    assert scheduled_name("shop", at(2026, 12, 7, 3, 0)) == "shop-202612070300"
