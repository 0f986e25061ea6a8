"""Business days and business hours of a country: weekends and public holidays.

Silence thresholds count business time in the country where the parcel is (a parcel does
not "stall" over a weekend or on Thanksgiving), and the simulator draws transit times in the
same business days, so both use this module. Public holidays come from the ``holidays``
package (imported on first use: a cold start that computes no deadline never pays for it);
its weekend days are per country (Sunday only in Hong Kong, Friday and Saturday in Israel).
A country it does not know, or an unknown country, counts Saturday and Sunday as the weekend
and has no holidays.

A *business hour* is an hour of a business day in the local time of the place (``tz``): the
whole local day counts, carriers sort around the clock. ``add_business_hours`` walks local
days, so DST changes and time zones are handled by ``zoneinfo``, not by offsets kept here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from typing import Any

_DEFAULT_WEEKEND = frozenset({5, 6})  # Saturday, Sunday (date.weekday())
_MAX_DAYS = 3660  # no calendar has ten years without a business day; guards the loops


@cache
def _holidays(country: str, year: int) -> Any:
    import holidays

    try:
        return holidays.country_holidays(country, years=[year])
    except NotImplementedError:
        return None


def public_holiday(day: date, country: str | None) -> str | None:
    """The name of the public holiday on ``day`` in ``country``, if it is one."""
    if not country:
        return None
    calendar = _holidays(country.upper(), day.year)
    if calendar is None:
        return None
    name: str | None = calendar.get(day)
    return name


def weekend_days(country: str | None, year: int) -> frozenset[int]:
    """The weekdays (Monday = 0) that are the weekend in ``country`` in ``year``."""
    calendar = _holidays(country.upper(), year) if country else None
    weekend = getattr(calendar, "weekend", None) if calendar is not None else None
    return frozenset(weekend) if weekend else _DEFAULT_WEEKEND


def is_business_day(day: date, country: str | None) -> bool:
    """Neither a weekend day nor a public holiday in ``country``."""
    return day.weekday() not in weekend_days(country, day.year) and public_holiday(day, country) is None


def next_business_day(day: date, country: str | None) -> date:
    """``day`` itself when it is a business day, else the next one."""
    for _ in range(_MAX_DAYS):
        if is_business_day(day, country):
            return day
        day += timedelta(days=1)
    raise ValueError(f"no business day in {country} after {day}")


def add_business_days(day: date, count: int, country: str | None) -> date:
    """The business day ``count`` business days after ``day`` (``day`` itself is not counted)."""
    if count < 0:
        raise ValueError("count must not be negative")
    for _ in range(_MAX_DAYS):
        if count == 0:
            return day
        day += timedelta(days=1)
        if is_business_day(day, country):
            count -= 1
    raise ValueError(f"no {count} business days in {country} after {day}")


def _local_midnight_after(instant: datetime, tz: tzinfo) -> datetime:
    local_day = instant.astimezone(tz).date()
    return datetime.combine(local_day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)


def add_business_hours(start: datetime, hours: float, country: str | None, tz: tzinfo | None = None) -> datetime:
    """The instant when ``hours`` of business time have passed since ``start``.

    Time on a local day (in ``tz``, UTC when unknown) that is not a business day of
    ``country`` does not count: 48 hours from a Friday 18:00 scan end on Tuesday 18:00, and a
    scan on a Saturday starts counting on Monday at 00:00.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if hours < 0:
        raise ValueError("hours must not be negative")
    zone = tz or UTC
    remaining = timedelta(hours=hours)
    cursor = start.astimezone(UTC)
    for _ in range(_MAX_DAYS):
        boundary = _local_midnight_after(cursor, zone)
        if is_business_day(cursor.astimezone(zone).date(), country):
            available = boundary - cursor
            if remaining <= available:
                return cursor + remaining
            remaining -= available
        cursor = boundary
    raise ValueError(f"no {hours} business hours in {country} after {start}")


def business_hours_between(start: datetime, end: datetime, country: str | None, tz: tzinfo | None = None) -> float:
    """Hours of business time from ``start`` to ``end`` (0 when ``end`` is not later)."""
    zone = tz or UTC
    cursor, end = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta(0)
    for _ in range(_MAX_DAYS):
        if cursor >= end:
            break
        boundary = min(_local_midnight_after(cursor, zone), end)
        if is_business_day(cursor.astimezone(zone).date(), country):
            total += boundary - cursor
        cursor = boundary
    return total.total_seconds() / 3600
