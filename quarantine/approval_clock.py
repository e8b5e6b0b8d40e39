"""Business days for the approval clock: weekends and configured holidays do not count.

A message held on a Friday evening is reminded about on Monday evening, not
on Saturday: the approval queue must never let mail die over a weekend. A
message held on a weekend or holiday starts counting at the beginning of the
next business day. Days are counted in the agency's time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from milter.kernel.db import as_utc

ONE_DAY = dt.timedelta(days=1)


def is_business_day(day: dt.date, holidays: frozenset[dt.date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_business_days(start: dt.datetime, days: int, zone: dt.tzinfo, holidays: Iterable[dt.date] = ()) -> dt.datetime:
    """The moment `days` business days after `start` (aware, returned in UTC)."""
    off = frozenset(holidays)
    local = as_utc(start).astimezone(zone)
    day = local.date()
    clock = local.time().replace(tzinfo=None)
    if not is_business_day(day, off):
        while not is_business_day(day, off):
            day += ONE_DAY
        clock = dt.time(0)
    for _ in range(days):
        day += ONE_DAY
        while not is_business_day(day, off):
            day += ONE_DAY
    return as_utc(dt.datetime.combine(day, clock, tzinfo=zone))


def local_text(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """A moment as people read it in notices: "Monday 23 November 2026, 10:00 EST"."""
    local = as_utc(moment).astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname() or ''}".rstrip()
