"""The mega-stats endpoint against a brute-force oracle written from the rules alone.

The oracle never calls ``alignwork.periods``: for each appointment it converts ``starts_at`` to the
requested zone and compares local calendar dates with "now"'s local date (same date; same
Sunday-started week; same month; the following month). Cancelled appointments are never counted.

The brute-force first-instant-of-a-date from ``tests.test_periods`` is used only to *place*
appointments on and around period boundaries, never to decide what is counted.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.period_oracle import (
    BAD_ZONE_NAMES,
    ORACLE_ZONES,
    add_months,
    anchor_dates,
    brute_day_start,
    local_date_steps_back,
)

UTC = timezone.utc
URL = "/api/v1/appointments/mega-stats"

def u(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def new_tenant_id() -> str:
    return "t-" + uuid.uuid4().hex[:20]


# -- the oracle ---------------------------------------------------------------------------


def local_date_in(zone: str, instant: datetime) -> date:
    return instant.astimezone(ZoneInfo(zone)).date()


def month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def oracle(zone: str, now: datetime, rows) -> dict[str, dict[str, int]]:
    """Counts by period and status, deciding membership by local calendar dates only."""
    today = local_date_in(zone, now)
    sunday = today - timedelta(days=(today.weekday() + 1) % 7)  # weekday(): Monday 0 .. Sunday 6
    this_month = month_index(today)
    counts = {name: Counter() for name in ("today", "week", "month", "nextMonth")}
    for starts_at, status in rows:
        if status == "cancelled":
            continue
        day = local_date_in(zone, starts_at)
        if day == today:
            counts["today"][status] += 1
        if sunday <= day < sunday + timedelta(days=7):
            counts["week"][status] += 1
        if month_index(day) == this_month:
            counts["month"][status] += 1
        if month_index(day) == this_month + 1:
            counts["nextMonth"][status] += 1
    return {name: {"confirmed": c["confirmed"], "pending": c["pending"]} for name, c in counts.items()}


def get_stats(client, tenant_id: str, now: datetime, tz: str | None = None):
    query = {"tenantId": tenant_id}
    if tz is not None:
        query["tz"] = tz
    with time_machine.travel(now, tick=False):
        return client.get(URL, query_string=query)


def assert_stats(response, expected, context) -> None:
    assert response.status_code == 200, (context, response.status_code, response.get_json())
    assert response.get_json() == expected, context


# -- strategies ---------------------------------------------------------------------------


def usable_year(zone: str, year: int) -> bool:
    # Where the local date steps back (St John's before 2011), "by local date" and "by instant in
    # [first instant, next first instant)" legitimately differ for an hour; the oracle avoids it,
    # with a year's margin since appointments lie up to 70 days from now.
    return not any(local_date_steps_back(zone, y) for y in (year - 1, year, year + 1))


@st.composite
def now_instants(draw, zone: str) -> datetime:
    """An instant within a day of a local midnight of interest (see ``anchor_dates``)."""
    tz = ZoneInfo(zone)
    day = draw(anchor_dates(zone).filter(lambda d: usable_year(zone, d.year)))
    base = brute_day_start(tz, day + timedelta(days=draw(st.sampled_from([0, 0, 1]))))
    delta = draw(st.one_of(
        st.sampled_from([0, -1, 1, -60, 60, -3600, 3600]).map(lambda s: timedelta(seconds=s)),
        st.integers(-86_400, 86_400).map(lambda s: timedelta(seconds=s)),
    ))
    return base + delta


def boundaries(zone: str, now: datetime) -> list[datetime]:
    """The first instants of the local dates that open or close a period, plus neighbours."""
    tz = ZoneInfo(zone)
    today = local_date_in(zone, now)
    sunday = today - timedelta(days=(today.weekday() + 1) % 7)
    month = today.replace(day=1)
    days = {
        today, today + timedelta(days=1), today - timedelta(days=1),
        sunday, sunday + timedelta(days=7), sunday - timedelta(days=7),
        month, add_months(month, 1), add_months(month, 2), add_months(month, -1),
    }
    return sorted(brute_day_start(tz, d) for d in days)


# Exactly on a boundary is the sharpest case, so it is drawn three times as often.
BOUNDARY_DELTAS = [timedelta(0), timedelta(0), timedelta(0),
                   timedelta(seconds=-1), timedelta(seconds=1), timedelta(minutes=-1), timedelta(minutes=1),
                   timedelta(microseconds=-1), timedelta(microseconds=1)]
STATUSES = st.sampled_from(["pending", "confirmed", "cancelled"])


@st.composite
def scenarios(draw, zone: str):
    now = draw(now_instants(zone))
    edges = boundaries(zone, now)
    near_edge = st.tuples(st.sampled_from(edges), st.sampled_from(BOUNDARY_DELTAS)).map(sum_pair)
    anywhere = st.integers(-70 * 86_400, 70 * 86_400).map(lambda s: now + timedelta(seconds=s))
    near_now = st.sampled_from([timedelta(0), timedelta(seconds=-1), timedelta(seconds=1)]).map(
        lambda d: now + d)
    rows = draw(st.lists(st.tuples(st.one_of(near_edge, near_edge, anywhere, near_now), STATUSES),
                         min_size=1, max_size=40))
    # How the zone reaches the service: as the tenant's default, or as ``tz`` over a tenant whose
    # own zone is another one (then the tenant's default is checked too, through the same cache).
    mode = draw(st.sampled_from(["default", "explicit-same", "explicit-other"]))
    other = draw(st.sampled_from([z for z in ORACLE_ZONES if z != zone]))
    return zone, now, rows, mode, other


def sum_pair(pair):
    instant, delta = pair
    return instant + delta


# -- the property -------------------------------------------------------------------------


# Each zone gets its own examples (8 x 10 zones = 80 per database) so none is left out by chance.
@pytest.mark.parametrize("zone", ORACLE_ZONES)
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mega_stats_match_the_oracle(client, build, zone, data):
    zone, now, rows, mode, other = data.draw(scenarios(zone), label="scenario")
    tenant_id = new_tenant_id()  # fresh every example: no cached entry can be served
    tenant_zone = other if mode == "explicit-other" else zone
    build.tenant(tenant_id, timezone=tenant_zone)
    build.appointments(tenant_id, rows)

    context = {"zone": zone, "now": now.isoformat(), "mode": mode, "tenant_zone": tenant_zone,
               "rows": [(r.isoformat(), s) for r, s in rows]}
    if mode == "default":
        assert_stats(get_stats(client, tenant_id, now), oracle(zone, now, rows), context)
    else:
        assert_stats(get_stats(client, tenant_id, now, tz=zone), oracle(zone, now, rows), context)
        if mode == "explicit-other" and usable_year(other, local_date_in(other, now).year):
            assert_stats(get_stats(client, tenant_id, now), oracle(other, now, rows),
                         {**context, "request": "tenant default after explicit tz"})
            assert_stats(get_stats(client, tenant_id, now, tz=zone), oracle(zone, now, rows),
                         {**context, "request": "explicit tz again"})


# -- explicit examples --------------------------------------------------------------------


def test_oracle_itself_on_a_hand_computed_case():
    # New York, Saturday 2024-03-09 12:00 EST. Today ends at 2024-03-10 05:00 UTC (Sunday
    # 00:00 EST), which is also where the week ends.
    now = u(2024, 3, 9, 17)
    rows = [
        (u(2024, 3, 10, 5), "pending"),            # Sunday 00:00: next week, same month
        (u(2024, 3, 10, 4, 59, 59), "confirmed"),  # Saturday 23:59:59: today
        (u(2024, 3, 3, 5), "pending"),             # Sunday 2024-03-03 00:00: this week
        (u(2024, 4, 1, 4), "confirmed"),           # 2024-04-01 00:00 EDT: next month
        (u(2024, 4, 1, 3, 59), "pending"),         # 2024-03-31 23:59 EDT: this month
        (u(2024, 3, 9, 18), "cancelled"),
    ]
    assert oracle("America/New_York", now, rows) == {
        "today": {"confirmed": 1, "pending": 0},
        "week": {"confirmed": 1, "pending": 1},
        "month": {"confirmed": 1, "pending": 3},
        "nextMonth": {"confirmed": 1, "pending": 0},
    }


ZERO = {"confirmed": 0, "pending": 0}


@pytest.mark.parametrize(
    "zone, now, at_end, period_end_is",
    [
        # Saturday 2024-03-09 in New York: today and the week both end at Sunday 00:00 EST.
        pytest.param("America/New_York", u(2024, 3, 9, 17), u(2024, 3, 10, 5), "week",
                     id="new-york-week-end"),
        # 2024-03-31 in London, the day clocks go forward; the month ends at 2024-04-01 00:00 BST.
        pytest.param("Europe/London", u(2024, 3, 31, 12), u(2024, 3, 31, 23), "month",
                     id="london-month-end-after-dst"),
        # Saturday 2018-11-03 in Sao Paulo: the next day starts at 01:00 -02 (03:00 UTC).
        pytest.param("America/Sao_Paulo", u(2018, 11, 3, 15), u(2018, 11, 4, 3), "week",
                     id="sao-paulo-week-end-at-dst-gap"),
        # 2024-12-31 in Kathmandu: the year ends at 2024-12-31 18:15 UTC.
        pytest.param("Asia/Kathmandu", u(2024, 12, 31, 6), u(2024, 12, 31, 18, 15), "month",
                     id="kathmandu-year-end"),
    ],
)
def test_appointment_at_a_period_end_counts_in_the_next_period(client, build, zone, now, at_end,
                                                                period_end_is):
    tenant_id = build.tenant(new_tenant_id(), timezone=zone)
    build.appointments(tenant_id, [(at_end, "confirmed"), (at_end - timedelta(microseconds=1), "pending")])
    before = get_stats(client, tenant_id, now).get_json()
    assert before["today"] == {"confirmed": 0, "pending": 1}
    if period_end_is == "week":
        assert before["week"] == {"confirmed": 0, "pending": 1}
        assert before["month"] == {"confirmed": 1, "pending": 1}
    else:
        assert before["month"] == {"confirmed": 0, "pending": 1}
        assert before["nextMonth"] == {"confirmed": 1, "pending": 0}

    # At the instant the period ends, the appointment that starts there is "today". A new tenant
    # with the same rows is asked, so no cached answer is involved.
    later_tenant = build.tenant(new_tenant_id(), timezone=zone)
    build.appointments(later_tenant, [(at_end, "confirmed"), (at_end - timedelta(microseconds=1), "pending")])
    after = get_stats(client, later_tenant, at_end).get_json()
    assert after["today"] == {"confirmed": 1, "pending": 0}
    assert after["week"]["confirmed"] == 1
    if period_end_is == "week":
        assert after["week"] == {"confirmed": 1, "pending": 0}
    else:
        assert after["month"] == {"confirmed": 1, "pending": 0}


def test_stats_follow_the_clock_across_local_midnight(client, build):
    """The same tenant asked one second before and at local midnight sees "today" move."""
    tenant_id = build.tenant(new_tenant_id(), timezone="America/Recife")
    # 2024-05-01 00:00 in Recife is 03:00 UTC.
    build.appointments(tenant_id, [(u(2024, 4, 30, 12), "pending"), (u(2024, 5, 1, 12), "confirmed")])
    before = get_stats(client, tenant_id, u(2024, 5, 1, 2, 59, 59)).get_json()
    assert before == {
        "today": {"confirmed": 0, "pending": 1},
        "week": {"confirmed": 1, "pending": 1},   # Tuesday 04-30 and Wednesday 05-01
        "month": {"confirmed": 0, "pending": 1},
        "nextMonth": {"confirmed": 1, "pending": 0},
    }
    after = get_stats(client, tenant_id, u(2024, 5, 1, 3)).get_json()
    assert after == {
        "today": {"confirmed": 1, "pending": 0},
        "week": {"confirmed": 1, "pending": 1},
        "month": {"confirmed": 1, "pending": 0},
        "nextMonth": ZERO,
    }


def test_cancelled_is_never_counted(client, build):
    zone = "America/Recife"
    now = u(2024, 5, 15, 15)
    tenant_id = build.tenant(new_tenant_id(), timezone=zone)
    rows = [(now, "cancelled"), (now + timedelta(days=1), "cancelled"), (u(2024, 5, 1, 3), "cancelled"),
            (u(2024, 6, 10, 12), "cancelled"), (u(2024, 5, 12, 3), "cancelled")]
    build.appointments(tenant_id, rows)
    assert get_stats(client, tenant_id, now).get_json() == {
        "today": ZERO, "week": ZERO, "month": ZERO, "nextMonth": ZERO,
    }
    other = build.tenant(new_tenant_id(), timezone=zone)
    build.appointments(other, rows + [(now, "pending"), (u(2024, 6, 10, 12), "confirmed")])
    assert get_stats(client, other, now).get_json() == {
        "today": {"confirmed": 0, "pending": 1},
        "week": {"confirmed": 0, "pending": 1},
        "month": {"confirmed": 0, "pending": 1},
        "nextMonth": {"confirmed": 1, "pending": 0},
    }


def test_other_tenants_appointments_are_not_counted(client, build):
    now = u(2024, 5, 15, 15)
    mine = build.tenant(new_tenant_id(), timezone="America/Recife")
    theirs = build.tenant(new_tenant_id(), timezone="America/Recife")
    build.appointments(theirs, [(now, "pending"), (now, "confirmed")])
    build.appointments(mine, [(now, "confirmed")])
    assert get_stats(client, mine, now).get_json()["today"] == {"confirmed": 1, "pending": 0}


def test_explicit_tz_overrides_the_tenant_zone(client, build):
    # 2024-06-15 11:00 UTC is 2024-06-16 01:00 in Kiritimati but 2024-06-15 08:00 in Recife.
    now = u(2024, 6, 15, 11)
    tenant_id = build.tenant(new_tenant_id(), timezone="America/Recife")
    build.appointments(tenant_id, [(u(2024, 6, 15, 9), "pending")])  # 06-15 23:00 Kiritimati
    kiritimati = get_stats(client, tenant_id, now, tz="Pacific/Kiritimati").get_json()
    assert kiritimati["today"] == ZERO
    assert kiritimati["week"] == ZERO  # the Kiritimati week began on Sunday 06-16
    assert kiritimati["month"] == {"confirmed": 0, "pending": 1}
    recife = get_stats(client, tenant_id, now).get_json()
    assert recife["today"] == {"confirmed": 0, "pending": 1}
    assert recife["week"] == {"confirmed": 0, "pending": 1}


@pytest.mark.parametrize("tz", BAD_ZONE_NAMES)
def test_invalid_tz_is_a_400_naming_tz(client, build, tz):
    tenant_id = build.tenant(new_tenant_id())
    response = client.get(URL, query_string={"tenantId": tenant_id, "tz": tz})
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == 400
    assert body["status"] == "Bad Request"
    assert isinstance(body["message"], str) and body["message"]
    assert set(body["errors"]) == {"tz"}
    assert isinstance(body["errors"]["tz"], list) and body["errors"]["tz"]
    assert all(isinstance(m, str) and m for m in body["errors"]["tz"])
