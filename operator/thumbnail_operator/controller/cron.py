"""Five-field cron schedules (minute hour day-of-month month day-of-week, UTC), as CronJobs
read them: `*`, lists, ranges and steps; day-of-week 0-7 (0 and 7 are Sunday); when both
day fields are restricted, a day matching either one fires (the classic cron rule)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))
# Far enough back for any schedule that fires at all (Feb 29 on a Monday: within 28 years).
_LOOKBACK = timedelta(days=366 * 29)


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = int(first), int(last)
        else:
            start = int(base)
            end = high if step_text else start
        if not (low <= start <= end <= high) or step < 1:
            raise ValueError(f"cron {name} {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday, as datetime.weekday()
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> Schedule:
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"cron schedule {text!r} needs 5 fields, has {len(parts)}")
        try:
            minutes, hours, days, months, cron_weekdays = (
                _field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True))
        except ValueError as err:
            if "outside" in str(err):
                raise
            raise ValueError(f"cron schedule {text!r} is not valid: {err}") from err
        # cron: 0 and 7 are Sunday, 1 Monday; datetime: 0 Monday, 6 Sunday.
        weekdays = frozenset((day - 1) % 7 for day in cron_weekdays)
        return cls(minutes, hours, days, months, weekdays,
                   any_day=parts[2] == "*", any_weekday=parts[4] == "*")

    def _day_matches(self, when: datetime) -> bool:
        by_date, by_weekday = when.day in self.days, when.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return by_date and by_weekday
        return by_date or by_weekday

    def latest(self, now: datetime) -> datetime | None:
        """The last time at or before `now` this schedule fires (None: never, e.g. Feb 30)."""
        when = now.replace(second=0, microsecond=0)
        floor = when - _LOOKBACK
        while when >= floor:
            if when.month not in self.months:
                when = when.replace(day=1, hour=0, minute=0) - timedelta(minutes=1)
            elif not self._day_matches(when):
                when = when.replace(hour=0, minute=0) - timedelta(minutes=1)
            elif when.hour not in self.hours:
                when = when.replace(minute=0) - timedelta(minutes=1)
            elif when.minute not in self.minutes:
                when -= timedelta(minutes=1)
            else:
                return when
        return None
