"""An independent reading of the period rules, checked against ``alignwork.periods``.

The rules: periods are half-open ``[start, end)`` in the requested time zone: today, the week from
Sunday to the next Sunday, the calendar month and the next calendar month. Every boundary is the
first instant of a local date; when a DST gap swallows midnight, it is the first instant that
exists on that date.

The hand-computed cases below were worked out from the published offsets of each zone, and the
property test compares the pure functions with the brute-force definitions of
``tests/period_oracle.py``.
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignwork.periods import (
    InvalidTimezone,
    day_start,
    local_date,
    parse_timezone,
    periods_for_date,
)
from tests.period_oracle import (
    BAD_ZONE_NAMES,
    PERIOD_KEYS,
    PROPERTY_ZONES,
    anchor_dates,
    as_pairs,
    assert_utc_aware,
    brute_day_start,
    brute_local_date,
    brute_periods_for_date,
    contains,
    local_date_steps_back,
    odd_length_days,
    periods_at,
    u,
    zone_and_instant,
)


@pytest.mark.parametrize("name", BAD_ZONE_NAMES)
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
    assert contains(got["today"], instant) and contains(got["week"], instant) and contains(got["month"], instant)
    assert not contains(got["nextMonth"], instant)


def test_period_membership_is_half_open():
    tz = parse_timezone("America/New_York")
    for period in periods_for_date(tz, date(2024, 3, 10)).values():
        assert contains(period, period.start)
        assert not contains(period, period.start - timedelta(microseconds=1))
        assert contains(period, period.end - timedelta(microseconds=1))
        assert not contains(period, period.end)
        # The same instant given in another offset is the same instant.
        assert contains(period, period.start.astimezone(tz))
        assert not contains(period, period.end.astimezone(ZoneInfo("Asia/Kathmandu")))


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
            assert contains(period, instant) == (name != "nextMonth"), name
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
