"""The four stats periods as UTC instants: pure functions of a time zone and a date or instant.

Every period is half-open, ``[start, end)``, and every boundary is the first instant of a local
date in the requested zone. No Flask and no database here, so the maths is tested on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

PERIOD_NAMES = ("today", "week", "month", "nextMonth")
MAX_TZ_LENGTH = 64
# IANA keys only: no leading slash, no dots, so nothing path-like ever reaches the zone loader.
_TZ_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*$")


class InvalidTimezone(ValueError):
    pass


@lru_cache(maxsize=1)
def _known_keys() -> frozenset[str]:
    """IANA keys, from the tzdata package's list: the host's zoneinfo directory also holds
    names such as ``localtime`` or ``posixrules`` that are files, not zones."""
    try:
        listed = resources.files("tzdata").joinpath("zones").read_text().split()
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - tzdata is pinned
        listed = available_timezones() - {"localtime", "posixrules", "Factory"}
    return frozenset(listed)


@lru_cache(maxsize=1024)
def parse_timezone(name: str) -> ZoneInfo:
    """The zone for an IANA key, or ``InvalidTimezone`` for anything else."""
    if not isinstance(name, str) or not name:
        raise InvalidTimezone("Time zone is required.")
    if len(name) > MAX_TZ_LENGTH:
        raise InvalidTimezone(f"Time zone must be at most {MAX_TZ_LENGTH} characters.")
    if not _TZ_KEY.match(name) or name not in _known_keys():
        raise InvalidTimezone(f"Unknown time zone {name!r}; use an IANA key such as America/Recife.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - listed but unloadable
        raise InvalidTimezone(f"Unknown time zone {name!r}.") from exc


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC."""

    start: datetime
    end: datetime


def local_date(tz: ZoneInfo, instant: datetime) -> date:
    """The calendar date in ``tz`` at an aware ``instant``."""
    return instant.astimezone(tz).date()


def day_start(tz: ZoneInfo, day: date) -> datetime:
    """The first instant (UTC) whose local date in ``tz`` is ``day``.

    Usually local midnight. When midnight falls in a DST gap it does not exist, and the day
    begins at the transition instead (America/Sao_Paulo, 2018-11-04, began at 01:00).
    """
    naive = datetime.combine(day, time.min)
    candidates = []
    for fold in (0, 1):
        instant = naive.replace(tzinfo=tz, fold=fold).astimezone(timezone.utc)
        if instant.astimezone(tz).replace(tzinfo=None) == naive:
            candidates.append(instant)
    if candidates:
        return min(candidates)
    # Midnight is skipped: the day starts at the transition, which lies between the two
    # readings of the missing wall time. Bisect to the microsecond.
    lo, hi = sorted(naive.replace(tzinfo=tz, fold=f).astimezone(timezone.utc) for f in (0, 1))
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        if local_date(tz, mid) >= day:
            hi = mid
        else:
            lo = mid
    return hi


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def periods_for_date(tz: ZoneInfo, today: date) -> dict[str, Period]:
    """The four periods for the local date ``today`` in ``tz``."""
    week_start = today - timedelta(days=(today.weekday() + 1) % 7)  # Sunday
    month_start = today.replace(day=1)
    next_month = _first_of_next_month(month_start)
    after_next = _first_of_next_month(next_month)
    starts = {d: day_start(tz, d) for d in
              {today, today + timedelta(days=1), week_start, week_start + timedelta(days=7),
               month_start, next_month, after_next}}
    return {
        "today": Period(starts[today], starts[today + timedelta(days=1)]),
        "week": Period(starts[week_start], starts[week_start + timedelta(days=7)]),
        "month": Period(starts[month_start], starts[next_month]),
        "nextMonth": Period(starts[next_month], starts[after_next]),
    }
