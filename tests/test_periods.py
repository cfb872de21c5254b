"""An independent reading of the period rules, checked against ``alignwork.periods``.

The rules: periods are half-open ``[start, end)`` in the requested time zone: today, the week from
Sunday to the next Sunday, the calendar month and the next calendar month. Every boundary is the
first instant of a local date; when a DST gap swallows midnight, it is the first instant that
exists on that date.

The hand-computed cases below were worked out from the published offsets of each zone, and the
property test compares the pure functions with a brute-force definition written here (a bisection
over UTC seconds for "the first instant whose local date is on or after ``day``").
"""

from __future__ import annotations

import calendar
import functools
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignwork.periods import (
    InvalidTimezone,
    day_start,
    local_date,
    parse_timezone,
    periods_at,
    periods_for_date,
)

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


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../../etc/passwd", id="path-traversal"),
        pytest.param("/etc/localtime", id="absolute-path"),
        pytest.param("America/recife", id="wrong-case"),
        pytest.param("", id="empty"),
        pytest.param("A" * 65, id="65-characters"),
        pytest.param("America/" + "A" * 57, id="65-characters-zone-like"),
        pytest.param("Not/AZone", id="unknown-key"),
        pytest.param("America/../America/Recife", id="dot-dot-inside"),
        pytest.param("America/Recife/", id="trailing-slash"),
    ],
)
def test_parse_timezone_rejects_names_that_are_not_iana_keys(name):
    with pytest.raises(InvalidTimezone):
        parse_timezone(name)
    assert issubclass(InvalidTimezone, ValueError)


@pytest.mark.parametrize("name", ["UTC", "America/Recife", "Asia/Kathmandu", "America/St_Johns"])
def test_parse_timezone_accepts_iana_keys(name):
    tz = parse_timezone(name)
    assert isinstance(tz, ZoneInfo)
    assert tz.key == name


# -- hand-computed known cases ------------------------------------------------------------


@pytest.mark.parametrize(
    "zone, day, start",
    [
        # Brazil's DST started at midnight on 2018-11-04: 00:00 -03 became 01:00 -02, so the
        # day's first instant is 01:00 local = 03:00 UTC.
        pytest.param("America/Sao_Paulo", date(2018, 11, 4), u(2018, 11, 4, 3),
                     id="sao-paulo-midnight-skipped-by-dst"),
        pytest.param("America/Sao_Paulo", date(2018, 11, 5), u(2018, 11, 5, 2),
                     id="sao-paulo-day-after-gap-at-minus-2"),
        # DST ended on 2018-02-18 at 00:00 -02 -> 23:00 -03 on the 17th: the 17th lasts 25 hours.
        pytest.param("America/Sao_Paulo", date(2018, 2, 17), u(2018, 2, 17, 2),
                     id="sao-paulo-long-day-start"),
        pytest.param("America/Sao_Paulo", date(2018, 2, 18), u(2018, 2, 18, 3), id="sao-paulo-after-dst-end"),
        pytest.param("America/Recife", date(2024, 5, 1), u(2024, 5, 1, 3), id="recife-minus-3"),
        pytest.param("Asia/Kathmandu", date(2024, 6, 15), u(2024, 6, 14, 18, 15), id="kathmandu-plus-5-45"),
        pytest.param("Asia/Kolkata", date(2024, 6, 15), u(2024, 6, 14, 18, 30), id="kolkata-plus-5-30"),
        pytest.param("America/St_Johns", date(2024, 1, 15), u(2024, 1, 15, 3, 30),
                     id="st-johns-winter-minus-3-30"),
        pytest.param("America/St_Johns", date(2024, 7, 1), u(2024, 7, 1, 2, 30),
                     id="st-johns-summer-minus-2-30"),
        pytest.param("Pacific/Kiritimati", date(2024, 6, 16), u(2024, 6, 15, 10), id="kiritimati-plus-14"),
        pytest.param("Pacific/Pago_Pago", date(2024, 6, 30), u(2024, 6, 30, 11), id="pago-pago-minus-11"),
        pytest.param("Asia/Tokyo", date(2024, 1, 1), u(2023, 12, 31, 15), id="tokyo-new-year"),
        pytest.param("Europe/London", date(2024, 3, 31), u(2024, 3, 31, 0), id="london-spring-forward-day"),
        pytest.param("Europe/London", date(2024, 4, 1), u(2024, 3, 31, 23), id="london-first-bst-midnight"),
        pytest.param("America/New_York", date(2024, 3, 10), u(2024, 3, 10, 5),
                     id="new-york-spring-forward-day"),
        pytest.param("America/New_York", date(2024, 11, 4), u(2024, 11, 4, 5), id="new-york-after-fall-back"),
    ],
)
def test_day_start_is_the_first_instant_of_the_local_date(zone, day, start):
    tz = parse_timezone(zone)
    got = day_start(tz, day)
    assert_utc_aware(got)
    assert got == start
    assert local_date(tz, start) == day
    assert local_date(tz, start - timedelta(microseconds=1)) < day


@pytest.mark.parametrize(
    "zone, day, hours",
    [
        pytest.param("America/New_York", date(2024, 3, 10), 23, id="new-york-spring-forward-23h"),
        pytest.param("America/New_York", date(2024, 11, 3), 25, id="new-york-fall-back-25h"),
        pytest.param("Europe/London", date(2024, 3, 31), 23, id="london-spring-forward-23h"),
        pytest.param("Europe/London", date(2024, 10, 27), 25, id="london-fall-back-25h"),
        pytest.param("America/Sao_Paulo", date(2018, 11, 4), 23, id="sao-paulo-gap-at-midnight-23h"),
        pytest.param("America/Sao_Paulo", date(2018, 2, 17), 25, id="sao-paulo-dst-end-25h"),
        pytest.param("America/St_Johns", date(2024, 3, 10), 23, id="st-johns-spring-forward-23h"),
        pytest.param("America/St_Johns", date(2024, 11, 3), 25, id="st-johns-fall-back-25h"),
        pytest.param("America/New_York", date(2024, 3, 11), 24, id="new-york-ordinary-day-24h"),
    ],
)
def test_today_lasts_23_or_25_hours_on_dst_days(zone, day, hours):
    today = periods_for_date(parse_timezone(zone), day)["today"]
    assert today.end - today.start == timedelta(hours=hours)


# Each case: zone, local date, then the expected [start, end) of today, week, month, nextMonth.
KNOWN_PERIODS = [
    pytest.param(
        "America/Sao_Paulo", date(2018, 11, 4),
        (u(2018, 11, 4, 3), u(2018, 11, 5, 2)),
        (u(2018, 11, 4, 3), u(2018, 11, 11, 2)),   # 2018-11-04 is a Sunday
        (u(2018, 11, 1, 3), u(2018, 12, 1, 2)),
        (u(2018, 12, 1, 2), u(2019, 1, 1, 2)),
        id="sao-paulo-dst-gap-sunday",
    ),
    # The week of 2024-03-10 in New York, from a Sunday, a Wednesday and a Saturday. The week
    # contains the spring-forward change, so it lasts 167 hours.
    pytest.param(
        "America/New_York", date(2024, 3, 10),
        (u(2024, 3, 10, 5), u(2024, 3, 11, 4)),
        (u(2024, 3, 10, 5), u(2024, 3, 17, 4)),
        (u(2024, 3, 1, 5), u(2024, 4, 1, 4)),
        (u(2024, 4, 1, 4), u(2024, 5, 1, 4)),
        id="week-from-a-sunday",
    ),
    pytest.param(
        "America/New_York", date(2024, 3, 13),
        (u(2024, 3, 13, 4), u(2024, 3, 14, 4)),
        (u(2024, 3, 10, 5), u(2024, 3, 17, 4)),
        (u(2024, 3, 1, 5), u(2024, 4, 1, 4)),
        (u(2024, 4, 1, 4), u(2024, 5, 1, 4)),
        id="week-from-a-wednesday",
    ),
    pytest.param(
        "America/New_York", date(2024, 3, 16),
        (u(2024, 3, 16, 4), u(2024, 3, 17, 4)),
        (u(2024, 3, 10, 5), u(2024, 3, 17, 4)),
        (u(2024, 3, 1, 5), u(2024, 4, 1, 4)),
        (u(2024, 4, 1, 4), u(2024, 5, 1, 4)),
        id="week-from-a-saturday",
    ),
    pytest.param(
        "America/Recife", date(2024, 3, 9),   # a Saturday: the week ends with today
        (u(2024, 3, 9, 3), u(2024, 3, 10, 3)),
        (u(2024, 3, 3, 3), u(2024, 3, 10, 3)),
        (u(2024, 3, 1, 3), u(2024, 4, 1, 3)),
        (u(2024, 4, 1, 3), u(2024, 5, 1, 3)),
        id="recife-saturday-week-ends-with-today",
    ),
    pytest.param(
        "America/Recife", date(2024, 12, 31),   # a Tuesday; the week runs into next year
        (u(2024, 12, 31, 3), u(2025, 1, 1, 3)),
        (u(2024, 12, 29, 3), u(2025, 1, 5, 3)),
        (u(2024, 12, 1, 3), u(2025, 1, 1, 3)),
        (u(2025, 1, 1, 3), u(2025, 2, 1, 3)),
        id="year-end-next-month-is-january",
    ),
    pytest.param(
        "America/Recife", date(2025, 1, 1),   # a Wednesday; the week started last year
        (u(2025, 1, 1, 3), u(2025, 1, 2, 3)),
        (u(2024, 12, 29, 3), u(2025, 1, 5, 3)),
        (u(2025, 1, 1, 3), u(2025, 2, 1, 3)),
        (u(2025, 2, 1, 3), u(2025, 3, 1, 3)),
        id="new-year-week-started-last-year",
    ),
    pytest.param(
        "America/Recife", date(2024, 1, 31),
        (u(2024, 1, 31, 3), u(2024, 2, 1, 3)),
        (u(2024, 1, 28, 3), u(2024, 2, 4, 3)),
        (u(2024, 1, 1, 3), u(2024, 2, 1, 3)),
        (u(2024, 2, 1, 3), u(2024, 3, 1, 3)),   # leap February
        id="month-end-next-month-leap-february",
    ),
    pytest.param(
        "America/Recife", date(2023, 11, 30),
        (u(2023, 11, 30, 3), u(2023, 12, 1, 3)),
        (u(2023, 11, 26, 3), u(2023, 12, 3, 3)),
        (u(2023, 11, 1, 3), u(2023, 12, 1, 3)),
        (u(2023, 12, 1, 3), u(2024, 1, 1, 3)),
        id="november-end-next-month-december",
    ),
    pytest.param(
        "Asia/Kathmandu", date(2024, 6, 15),   # a Saturday
        (u(2024, 6, 14, 18, 15), u(2024, 6, 15, 18, 15)),
        (u(2024, 6, 8, 18, 15), u(2024, 6, 15, 18, 15)),
        (u(2024, 5, 31, 18, 15), u(2024, 6, 30, 18, 15)),
        (u(2024, 6, 30, 18, 15), u(2024, 7, 31, 18, 15)),
        id="kathmandu-plus-5-45",
    ),
    pytest.param(
        "America/St_Johns", date(2024, 3, 15),   # a Friday; DST began on Sunday 2024-03-10
        (u(2024, 3, 15, 2, 30), u(2024, 3, 16, 2, 30)),
        (u(2024, 3, 10, 3, 30), u(2024, 3, 17, 2, 30)),
        (u(2024, 3, 1, 3, 30), u(2024, 4, 1, 2, 30)),
        (u(2024, 4, 1, 2, 30), u(2024, 5, 1, 2, 30)),
        id="st-johns-minus-3-30-and-minus-2-30",
    ),
    pytest.param(
        "America/St_Johns", date(2024, 11, 3),   # a Sunday; DST ended that morning
        (u(2024, 11, 3, 2, 30), u(2024, 11, 4, 3, 30)),
        (u(2024, 11, 3, 2, 30), u(2024, 11, 10, 3, 30)),
        (u(2024, 11, 1, 2, 30), u(2024, 12, 1, 3, 30)),
        (u(2024, 12, 1, 3, 30), u(2025, 1, 1, 3, 30)),
        id="st-johns-fall-back-sunday",
    ),
    pytest.param(
        "Europe/London", date(2024, 10, 27),   # a Sunday, 25 hours long
        (u(2024, 10, 26, 23), u(2024, 10, 28, 0)),
        (u(2024, 10, 26, 23), u(2024, 11, 3, 0)),
        (u(2024, 9, 30, 23), u(2024, 11, 1, 0)),
        (u(2024, 11, 1, 0), u(2024, 12, 1, 0)),
        id="london-fall-back-week",
    ),
    pytest.param(
        "Europe/London", date(2024, 3, 31),   # a Sunday, 23 hours long; the month's last day
        (u(2024, 3, 31, 0), u(2024, 3, 31, 23)),
        (u(2024, 3, 31, 0), u(2024, 4, 6, 23)),
        (u(2024, 3, 1, 0), u(2024, 3, 31, 23)),
        (u(2024, 3, 31, 23), u(2024, 4, 30, 23)),
        id="london-spring-forward-month-end",
    ),
    pytest.param(
        "America/New_York", date(2024, 11, 3),   # a Sunday, 25 hours long
        (u(2024, 11, 3, 4), u(2024, 11, 4, 5)),
        (u(2024, 11, 3, 4), u(2024, 11, 10, 5)),
        (u(2024, 11, 1, 4), u(2024, 12, 1, 5)),
        (u(2024, 12, 1, 5), u(2025, 1, 1, 5)),
        id="new-york-fall-back-week",
    ),
]


@pytest.mark.parametrize("zone, day, today, week, month, next_month", KNOWN_PERIODS)
def test_periods_for_date_known_cases(zone, day, today, week, month, next_month):
    got = periods_for_date(parse_timezone(zone), day)
    assert set(got) == set(PERIOD_KEYS)
    for period in got.values():
        assert_utc_aware(period.start)
        assert_utc_aware(period.end)
    assert as_pairs(got) == {"today": today, "week": week, "month": month, "nextMonth": next_month}


# Instants whose local date differs from their UTC date.
KNOWN_INSTANTS = [
    pytest.param(
        "Pacific/Kiritimati", u(2024, 6, 15, 11),   # local 2024-06-16 01:00, a Sunday
        date(2024, 6, 16),
        {"today": (u(2024, 6, 15, 10), u(2024, 6, 16, 10)),
         "week": (u(2024, 6, 15, 10), u(2024, 6, 22, 10)),
         "month": (u(2024, 5, 31, 10), u(2024, 6, 30, 10)),
         "nextMonth": (u(2024, 6, 30, 10), u(2024, 7, 31, 10))},
        id="kiritimati-local-date-ahead-of-utc",
    ),
    pytest.param(
        "Pacific/Kiritimati", u(2024, 6, 30, 12),   # local 2024-07-01 02:00: already next month
        date(2024, 7, 1),
        {"today": (u(2024, 6, 30, 10), u(2024, 7, 1, 10)),
         "week": (u(2024, 6, 29, 10), u(2024, 7, 6, 10)),
         "month": (u(2024, 6, 30, 10), u(2024, 7, 31, 10)),
         "nextMonth": (u(2024, 7, 31, 10), u(2024, 8, 31, 10))},
        id="kiritimati-month-ahead-of-utc",
    ),
    pytest.param(
        "Pacific/Kiritimati", u(2024, 12, 31, 10),   # local 2025-01-01 00:00: already next year
        date(2025, 1, 1),
        {"today": (u(2024, 12, 31, 10), u(2025, 1, 1, 10)),
         "week": (u(2024, 12, 28, 10), u(2025, 1, 4, 10)),
         "month": (u(2024, 12, 31, 10), u(2025, 1, 31, 10)),
         "nextMonth": (u(2025, 1, 31, 10), u(2025, 2, 28, 10))},
        id="kiritimati-year-ahead-of-utc",
    ),
    pytest.param(
        "Pacific/Pago_Pago", u(2024, 7, 1, 5),   # local 2024-06-30 18:00, a Sunday
        date(2024, 6, 30),
        {"today": (u(2024, 6, 30, 11), u(2024, 7, 1, 11)),
         "week": (u(2024, 6, 30, 11), u(2024, 7, 7, 11)),
         "month": (u(2024, 6, 1, 11), u(2024, 7, 1, 11)),
         "nextMonth": (u(2024, 7, 1, 11), u(2024, 8, 1, 11))},
        id="pago-pago-local-date-behind-utc",
    ),
    pytest.param(
        "Pacific/Pago_Pago", u(2025, 1, 1, 10, 59, 59),   # local 2024-12-31 23:59:59
        date(2024, 12, 31),
        {"today": (u(2024, 12, 31, 11), u(2025, 1, 1, 11)),
         "week": (u(2024, 12, 29, 11), u(2025, 1, 5, 11)),
         "month": (u(2024, 12, 1, 11), u(2025, 1, 1, 11)),
         "nextMonth": (u(2025, 1, 1, 11), u(2025, 2, 1, 11))},
        id="pago-pago-year-behind-utc",
    ),
    pytest.param(
        "America/Sao_Paulo", u(2018, 11, 4, 2, 59, 59),   # local Saturday 2018-11-03 23:59:59 -03
        date(2018, 11, 3),
        {"today": (u(2018, 11, 3, 3), u(2018, 11, 4, 3)),
         "week": (u(2018, 10, 28, 3), u(2018, 11, 4, 3)),
         "month": (u(2018, 11, 1, 3), u(2018, 12, 1, 2)),
         "nextMonth": (u(2018, 12, 1, 2), u(2019, 1, 1, 2))},
        id="sao-paulo-last-second-before-gap",
    ),
    pytest.param(
        "America/Sao_Paulo", u(2018, 11, 4, 3),   # local Sunday 2018-11-04 01:00 -02
        date(2018, 11, 4),
        {"today": (u(2018, 11, 4, 3), u(2018, 11, 5, 2)),
         "week": (u(2018, 11, 4, 3), u(2018, 11, 11, 2)),
         "month": (u(2018, 11, 1, 3), u(2018, 12, 1, 2)),
         "nextMonth": (u(2018, 12, 1, 2), u(2019, 1, 1, 2))},
        id="sao-paulo-first-instant-after-gap",
    ),
    pytest.param(
        "Asia/Kathmandu", u(2024, 12, 31, 18, 14, 59),   # local 2024-12-31 23:59:59
        date(2024, 12, 31),
        {"today": (u(2024, 12, 30, 18, 15), u(2024, 12, 31, 18, 15)),
         "week": (u(2024, 12, 28, 18, 15), u(2025, 1, 4, 18, 15)),
         "month": (u(2024, 11, 30, 18, 15), u(2024, 12, 31, 18, 15)),
         "nextMonth": (u(2024, 12, 31, 18, 15), u(2025, 1, 31, 18, 15))},
        id="kathmandu-last-second-of-year",
    ),
    pytest.param(
        "Asia/Kathmandu", u(2024, 12, 31, 18, 15),   # local 2025-01-01 00:00
        date(2025, 1, 1),
        {"today": (u(2024, 12, 31, 18, 15), u(2025, 1, 1, 18, 15)),
         "week": (u(2024, 12, 28, 18, 15), u(2025, 1, 4, 18, 15)),
         "month": (u(2024, 12, 31, 18, 15), u(2025, 1, 31, 18, 15)),
         "nextMonth": (u(2025, 1, 31, 18, 15), u(2025, 2, 28, 18, 15))},
        id="kathmandu-first-instant-of-year",
    ),
    pytest.param(
        "America/St_Johns", u(2024, 3, 10, 3, 29, 59),   # local Saturday 2024-03-09 23:59:59 -03:30
        date(2024, 3, 9),
        {"today": (u(2024, 3, 9, 3, 30), u(2024, 3, 10, 3, 30)),
         "week": (u(2024, 3, 3, 3, 30), u(2024, 3, 10, 3, 30)),
         "month": (u(2024, 3, 1, 3, 30), u(2024, 4, 1, 2, 30)),
         "nextMonth": (u(2024, 4, 1, 2, 30), u(2024, 5, 1, 2, 30))},
        id="st-johns-saturday-last-second",
    ),
]


@pytest.mark.parametrize("zone, instant, day, expected", KNOWN_INSTANTS)
def test_periods_at_uses_the_local_date(zone, instant, day, expected):
    tz = parse_timezone(zone)
    assert local_date(tz, instant) == day
    got = periods_at(tz, instant)
    assert as_pairs(got) == expected
    assert instant in got["today"] and instant in got["week"] and instant in got["month"]
    assert instant not in got["nextMonth"]


def test_period_membership_is_half_open():
    tz = parse_timezone("America/New_York")
    for period in periods_for_date(tz, date(2024, 3, 10)).values():
        assert period.start in period
        assert period.start - timedelta(microseconds=1) not in period
        assert period.end - timedelta(microseconds=1) in period
        assert period.end not in period
        # The same instant given in another offset is the same instant.
        assert period.start.astimezone(tz) in period
        assert period.end.astimezone(ZoneInfo("Asia/Kathmandu")) not in period


def test_brute_force_reference_agrees_with_hand_computed_cases():
    """The brute force used by the property tests is itself checked against known values."""
    assert brute_day_start(ZoneInfo("America/Sao_Paulo"), date(2018, 11, 4)) == u(2018, 11, 4, 3)
    assert brute_day_start(ZoneInfo("Asia/Kathmandu"), date(2024, 6, 15)) == u(2024, 6, 14, 18, 15)
    assert brute_day_start(ZoneInfo("America/St_Johns"), date(2024, 7, 1)) == u(2024, 7, 1, 2, 30)
    assert brute_day_start(ZoneInfo("Pacific/Kiritimati"), date(2024, 6, 16)) == u(2024, 6, 15, 10)
    assert odd_length_days("America/Sao_Paulo", 2018) == (date(2018, 2, 17), date(2018, 11, 4))
    assert odd_length_days("Europe/London", 2024) == (date(2024, 3, 31), date(2024, 10, 27))
    assert odd_length_days("Asia/Tokyo", 2024) == ()


def test_local_date_steps_back_only_in_st_johns_before_2011():
    """St John's ended DST at 00:01 until 2010: 00:00:59 NDT was followed by 23:01 NST of the day
    before. Every other zone-year tested has local dates that only move forward."""
    assert local_date_steps_back("America/St_Johns", 2001)
    assert local_date_steps_back("America/St_Johns", 2010)
    assert not local_date_steps_back("America/St_Johns", 2011)
    for zone in PROPERTY_ZONES:
        for year in (2017, 2018, 2019, 2024, 2039):
            assert not local_date_steps_back(zone, year), (zone, year)


def test_first_instant_of_a_date_whose_first_hour_repeats():
    """2001-10-28 in St John's: 00:00 NDT (02:30 UTC) came first, then the clock went back to
    23:01 on the 27th. The first instant of the 28th is 02:30 UTC."""
    tz = parse_timezone("America/St_Johns")
    assert brute_day_start(tz, date(2001, 10, 28)) == u(2001, 10, 28, 2, 30)
    assert day_start(tz, date(2001, 10, 28)) == u(2001, 10, 28, 2, 30)


# -- property tests -----------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(zone_and_instant())
def test_periods_at_matches_brute_force(zone_instant):
    zone, instant = zone_instant
    tz = parse_timezone(zone)
    day = brute_local_date(tz, instant)
    assert local_date(tz, instant) == day

    got = periods_at(tz, instant)
    assert set(got) == set(PERIOD_KEYS)
    assert as_pairs(got) == brute_periods_for_date(tz, day)
    for name, period in got.items():
        assert_utc_aware(period.start)
        assert_utc_aware(period.end)
        if not local_date_steps_back(zone, day.year):
            assert (instant in period) == (name != "nextMonth"), name
    # The same instant expressed in the local zone gives the same answer.
    assert as_pairs(periods_at(tz, instant.astimezone(tz))) == as_pairs(got)


@PROPERTY_SETTINGS
@given(st.sampled_from(PROPERTY_ZONES).flatmap(lambda z: st.tuples(st.just(z), anchor_dates(z))),
       st.integers(-1, 1))
def test_periods_for_date_and_day_start_match_brute_force(zone_day, shift):
    zone, day = zone_day
    day += timedelta(days=shift)
    tz = parse_timezone(zone)
    start = day_start(tz, day)
    assert_utc_aware(start)
    assert start == brute_day_start(tz, day)
    assert as_pairs(periods_for_date(tz, day)) == brute_periods_for_date(tz, day)
    # Periods tile time: each starts where the previous one ends.
    got = periods_for_date(tz, day)
    assert got["month"].end == got["nextMonth"].start
    assert got["month"].start <= got["today"].start < got["today"].end <= got["month"].end
    assert got["week"].start <= got["today"].start < got["today"].end <= got["week"].end
