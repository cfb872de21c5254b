"""An independent reading of the period rules: brute-force definitions and hypothesis strategies,
shared by the period tests and the stats oracle.

The rules: periods are half-open ``[start, end)`` in the requested time zone: today, the week from
Sunday to the next Sunday, the calendar month and the next calendar month. Every boundary is the
first instant of a local date; when a DST gap swallows midnight, it is the first instant that
exists on that date. The brute force is a bisection over UTC seconds for "the first instant whose
local date is on or after ``day``".
"""

from __future__ import annotations

import calendar
import functools
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import strategies as st

from alignwork.periods import local_date, periods_for_date

UTC = timezone.utc
PERIOD_KEYS = ("today", "week", "month", "nextMonth")

# The zones of the stats oracle, plus a few with unusual rules (midnight DST changes, 30-minute DST,
# +12:45) to widen the check of the pure functions.
ORACLE_ZONES = (
    "America/Sao_Paulo",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "America/Recife",
    "Asia/Tokyo",
)
EXTRA_ZONES = (
    "America/Santiago",   # DST changes at local midnight (24:00)
    "America/Havana",     # DST starts at 00:00 -> 01:00
    "Asia/Beirut",        # DST changes at midnight
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Chatham",    # +12:45 / +13:45
    "UTC",
)
PROPERTY_ZONES = ORACLE_ZONES + EXTRA_ZONES


def u(*args) -> datetime:
    """An aware UTC datetime."""
    return datetime(*args, tzinfo=UTC)


# -- the brute-force definitions ----------------------------------------------------------


def brute_local_date(tz: ZoneInfo, instant: datetime) -> date:
    return instant.astimezone(tz).date()


def _offset(tz: ZoneInfo, seconds: int) -> int:
    return int(datetime.fromtimestamp(seconds, UTC).astimezone(tz).utcoffset().total_seconds())


def offset_changes(tz: ZoneInfo, lo: int, hi: int, step: int = 1800) -> list[int]:
    """UTC seconds in ``(lo, hi]`` at which the zone's offset changes, found by stepping then
    bisecting. Assumes no two changes within ``step`` seconds of each other."""
    changes = []
    t, offset = lo, _offset(tz, lo)
    while t < hi:
        t2 = min(t + step, hi)
        if _offset(tz, t2) != offset:
            a, b = t, t2
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(tz, mid) == offset:
                    a = mid
                else:
                    b = mid
            changes.append(b)
            t, offset = b, _offset(tz, b)
        else:
            t = t2
    return changes


@functools.lru_cache(maxsize=100_000)
def brute_day_start(tz: ZoneInfo, day: date) -> datetime:
    """The first UTC instant (to the second) whose local date in ``tz`` is ``day`` or later.

    Time between 30 hours either side of "midnight as if it were UTC" (which brackets every real
    offset, -12..+14, plus a DST shift) is cut into pieces of constant offset; in each piece the
    local wall clock runs forward, so its first instant at or after local midnight is
    ``max(piece start, midnight - offset)``. The earliest over all pieces is the answer, even where
    the local date steps backwards (as in St John's before 2011, where DST ended at 00:01).
    Offsets and changes of the years tested are whole seconds, so the answer is exact.
    """
    midnight = int(datetime.combine(day, time()).replace(tzinfo=UTC).timestamp())
    lo, hi = midnight - 30 * 3600, midnight + 30 * 3600
    edges = [lo, *offset_changes(tz, lo, hi), hi]
    candidates = []
    for start, end in zip(edges, edges[1:]):
        first = max(start, midnight - _offset(tz, start))
        if first < end:
            candidates.append(first)
    found = datetime.fromtimestamp(min(candidates), UTC)
    assert brute_local_date(tz, found) >= day > brute_local_date(tz, found - timedelta(seconds=1))
    return found


@functools.lru_cache(maxsize=None)
def local_date_steps_back(zone: str, year: int) -> bool:
    """Whether, during ``year``, the local date in ``zone`` ever moves backwards (a DST end that
    crosses midnight backwards). Membership "by local date" and "by instant in [start, end)"
    then differ for that hour, so the stats oracle avoids such zone-years."""
    tz = ZoneInfo(zone)
    lo = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) - 2 * 86400
    hi = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()) + 2 * 86400
    for change in offset_changes(tz, lo, hi, step=6 * 3600):
        before = datetime.fromtimestamp(change - 1, UTC).astimezone(tz).date()
        after = datetime.fromtimestamp(change, UTC).astimezone(tz).date()
        if after < before:
            return True
    return False


def sunday_on_or_before(day: date) -> date:
    return day - timedelta(days=day.isoweekday() % 7)  # isoweekday: Monday 1 .. Sunday 7


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def add_months(first: date, months: int) -> date:
    index = first.year * 12 + (first.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def brute_period_dates(day: date) -> dict[str, tuple[date, date]]:
    """Each period as a half-open range of local dates ``[first, after_last)``."""
    sunday = sunday_on_or_before(day)
    month = first_of_month(day)
    return {
        "today": (day, day + timedelta(days=1)),
        "week": (sunday, sunday + timedelta(days=7)),
        "month": (month, add_months(month, 1)),
        "nextMonth": (add_months(month, 1), add_months(month, 2)),
    }


def brute_periods_for_date(tz: ZoneInfo, day: date) -> dict[str, tuple[datetime, datetime]]:
    return {
        name: (brute_day_start(tz, first), brute_day_start(tz, after))
        for name, (first, after) in brute_period_dates(day).items()
    }


def as_pairs(periods) -> dict[str, tuple[datetime, datetime]]:
    return {name: (p.start, p.end) for name, p in periods.items()}


def assert_utc_aware(value: datetime) -> None:
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0), value


# -- strategies shared with the stats oracle ----------------------------------------------


@functools.lru_cache(maxsize=None)
def odd_length_days(zone: str, year: int) -> tuple[date, ...]:
    """Local dates of ``year`` in ``zone`` that do not last exactly 24 hours (DST changes)."""
    tz = ZoneInfo(zone)
    days = []
    day = date(year, 1, 1)
    while day.year == year:
        if brute_day_start(tz, day + timedelta(days=1)) - brute_day_start(tz, day) != timedelta(days=1):
            days.append(day)
        day += timedelta(days=1)
    return tuple(days)


def year_for(zone: str):
    if zone == "America/Sao_Paulo":
        # 2018 has both a midnight DST gap (Nov 4) and a DST end at midnight (Feb 18).
        return st.sampled_from([2018, 2018, 2018, 2017, 2019])
    return st.integers(2001, 2039)


@st.composite
def anchor_dates(draw, zone: str) -> date:
    """A local date of interest: a plain day, a Sunday, a Saturday, a month or year end, a DST day."""
    year = draw(year_for(zone))
    kind = draw(st.sampled_from(["any", "sunday", "saturday", "month_end", "month_first",
                                 "year_end", "dst"]))
    if kind == "dst":
        candidates = odd_length_days(zone, year)
        if candidates:
            return draw(st.sampled_from(candidates))
        kind = "any"
    if kind == "year_end":
        return date(year, 12, 31)
    month = draw(st.integers(1, 12))
    last = calendar.monthrange(year, month)[1]
    if kind == "month_end":
        return date(year, month, last)
    if kind == "month_first":
        return date(year, month, 1)
    day = date(year, month, draw(st.integers(1, last)))
    if kind == "sunday":
        return sunday_on_or_before(day) if day.day > 7 else sunday_on_or_before(day) + timedelta(days=7)
    if kind == "saturday":
        return sunday_on_or_before(day) + timedelta(days=6)
    return day


SMALL_DELTAS = [timedelta(0), timedelta(microseconds=-1), timedelta(microseconds=1),
                timedelta(seconds=-1), timedelta(seconds=1), timedelta(minutes=-1),
                timedelta(minutes=1), timedelta(hours=-1), timedelta(hours=1)]


@st.composite
def instants_near_midnight(draw, zone: str) -> datetime:
    """An instant within a day of the local midnight that starts an anchor date."""
    tz = ZoneInfo(zone)
    day = draw(anchor_dates(zone))
    base = brute_day_start(tz, day)
    delta = draw(st.one_of(
        st.sampled_from(SMALL_DELTAS),
        st.integers(-86_400, 86_400).map(lambda s: timedelta(seconds=s)),
        st.integers(-86_400 * 10**6, 86_400 * 10**6).map(lambda us: timedelta(microseconds=us)),
    ))
    return base + delta


@st.composite
def zone_and_instant(draw, zones=PROPERTY_ZONES) -> tuple[str, datetime]:
    zone = draw(st.sampled_from(zones))
    return zone, draw(instants_near_midnight(zone))


# -- parse_timezone -----------------------------------------------------------------------


# Names that are not IANA keys (or not only one): ``parse_timezone`` refuses each, and the API
# answers 400 naming ``tz``.
BAD_ZONE_NAMES = [
    pytest.param("../../etc/passwd", id="path-traversal"),
    pytest.param("/etc/localtime", id="absolute-path"),
    pytest.param("America/recife", id="wrong-case"),
    pytest.param("", id="empty"),
    pytest.param("A" * 65, id="65-characters"),
    pytest.param("America/" + "A" * 57, id="65-characters-zone-like"),
    pytest.param("Not/AZone", id="unknown-key"),
    pytest.param("America/../America/Recife", id="dot-dot-inside"),
    pytest.param("America/Recife/", id="trailing-slash"),
]


def contains(period, instant: datetime) -> bool:
    """Half-open membership, ``[start, end)``."""
    return period.start <= instant < period.end


def periods_at(tz: ZoneInfo, instant: datetime):
    """The four periods around an aware ``instant``, as seen in ``tz``."""
    return periods_for_date(tz, local_date(tz, instant))
