"""Tomorrow's entries are ready before each zone's local midnight: polls just after midnight are
hits with the right numbers, a write just before midnight still shows after it, DST nights
included. The clock is moved with time-machine across each midnight."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine

from alignwork import metrics
from alignwork.cache.keys import StatsKey
from alignwork.periods import day_start
from alignwork.services.stats import midnight
from alignwork.services.stats.query import compute_stats_from_appointments
from tests.conftest import Builder

STATS = "/api/v1/appointments/mega-stats"


def local(zone: str, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


def poll(app, tz):
    response = app.test_client().get(f"{STATS}?tenantId=acme&tz={tz}")
    assert response.status_code == 200, response.get_json()
    return response


def expected(app, tz, day):
    with app.app_context():
        return compute_stats_from_appointments("acme", ZoneInfo(tz), day)


def precomputed() -> float:
    return metrics.STATS_PRECOMPUTED._value.get()


def hits_of_precomputed() -> float:
    return metrics.STATS_PRECOMPUTED_HITS._value.get()


@pytest.fixture(autouse=True)
def _fresh_memo(monkeypatch):
    monkeypatch.setattr(midnight, "_preparations", midnight._Preparations())


_patients: dict[int, int] = {}


def _book(app, at, status="confirmed"):
    Builder(app).appointments("acme", [(at, status)], patient_id=_patients[id(app)])


@pytest.fixture
def deploy(make_app, cache_backend):
    """An app on each cache, its safety net longer than the window (a per-process cache's
    default, 30 s, leaves nothing to pre-compute: see ``midnight.window``)."""

    def build(zone, **config):
        app = make_app(cache=cache_backend, CACHE_DEFAULT_TIMEOUT=900, **config)
        builder = Builder(app)
        builder.tenant("acme", timezone=zone)
        _patients[id(app)] = builder.patient("acme")
        return app

    return build


def _poll_through(app, tz, start, end, every=timedelta(seconds=30)):
    """Poll every ``every`` from ``start`` to ``end`` (both UTC), as a dashboard does; the X-Cache
    of each poll by its instant."""
    seen = {}
    with time_machine.travel(start, tick=False) as clock:
        at = start
        while at <= end:
            clock.move_to(at)
            seen[at] = poll(app, tz).headers["X-Cache"]
            at += every
    return seen


@pytest.mark.parametrize("zone, day", [
    ("America/Recife", date(2026, 5, 13)),     # an ordinary night
    ("America/Santiago", date(2026, 9, 5)),    # clocks jump from 24:00 to 01:00: no midnight
    ("America/Santiago", date(2026, 4, 4)),    # clocks go back from 24:00 to 23:00: 23:xx twice
    ("America/Sao_Paulo", date(2026, 12, 31)), # a new week is not new, but a new month and year
])
def test_the_first_polls_after_midnight_are_hits_with_the_next_days_numbers(deploy, zone, day):
    app = deploy(zone)
    tomorrow = day + timedelta(days=1)
    midnight_at = day_start(ZoneInfo(zone), tomorrow)
    _book(app, midnight_at + timedelta(hours=3))                 # tomorrow, in every period
    _book(app, midnight_at - timedelta(hours=3), "pending")      # today only
    _book(app, midnight_at + timedelta(days=40), "pending")      # next month for some days
    before = precomputed()
    seen = _poll_through(app, zone, midnight_at - timedelta(minutes=11), midnight_at - timedelta(seconds=5))
    assert precomputed() == before + 1  # once, not on every poll of the window
    assert seen[midnight_at - timedelta(minutes=11)] == "MISS" and "MISS" not in list(seen.values())[1:]
    served = hits_of_precomputed()
    with time_machine.travel(midnight_at + timedelta(seconds=1), tick=False):
        first = poll(app, zone)
        assert first.headers["X-Cache"] == "HIT"
        assert first.headers["X-Stats-Local-Date"] == tomorrow.isoformat()
        assert first.get_json() == expected(app, zone, tomorrow)
    assert hits_of_precomputed() == served + 1


def test_a_write_after_the_precomputation_is_visible_after_midnight(deploy):
    zone, day = "America/Recife", date(2026, 5, 13)
    app = deploy(zone)
    tomorrow = day + timedelta(days=1)
    midnight_at = day_start(ZoneInfo(zone), tomorrow)
    _book(app, midnight_at + timedelta(hours=3))
    before = precomputed()
    _poll_through(app, zone, midnight_at - timedelta(minutes=11), midnight_at - timedelta(minutes=1))
    assert precomputed() == before + 1
    with time_machine.travel(local(zone, 2026, 5, 13, 23, 59, 30), tick=False):
        _book(app, midnight_at + timedelta(hours=5))
    with time_machine.travel(midnight_at + timedelta(seconds=5), tick=False):
        after = poll(app, zone)
        assert after.headers["X-Cache"] == "MISS"  # the pre-computed entry was retired by the write
        assert after.get_json() == expected(app, zone, tomorrow)
        assert after.get_json()["today"]["confirmed"] == 2


def test_a_write_before_the_keys_moment_is_in_the_precomputed_entry(deploy):
    """The entry is computed under the generation current when it is computed, from the data
    then: an entry computed after a write holds it, and is served after midnight."""
    zone, day = "America/Recife", date(2026, 5, 13)
    app = deploy(zone)
    midnight_at = day_start(ZoneInfo(zone), day + timedelta(days=1))
    with time_machine.travel(midnight_at - timedelta(minutes=30), tick=False):
        poll(app, zone)
        _book(app, midnight_at + timedelta(hours=1))
    _poll_through(app, zone, midnight_at - timedelta(minutes=10), midnight_at - timedelta(minutes=1))
    with time_machine.travel(midnight_at + timedelta(seconds=5), tick=False):
        after = poll(app, zone)
        assert after.headers["X-Cache"] == "HIT"
        assert after.get_json()["today"]["confirmed"] == 1


def test_nothing_is_precomputed_outside_the_window_or_when_switched_off(deploy, make_app):
    app = deploy("America/Recife", STATS_PRECOMPUTE_SECONDS=0)
    midnight_at = day_start(ZoneInfo("America/Recife"), date(2026, 5, 14))
    before = precomputed()
    _poll_through(app, "America/Recife", midnight_at - timedelta(minutes=11), midnight_at - timedelta(seconds=5))
    assert precomputed() == before
    app = deploy("America/Recife")
    _poll_through(app, "America/Recife", midnight_at - timedelta(hours=2), midnight_at - timedelta(minutes=10, seconds=1),
                  every=timedelta(minutes=5))
    assert precomputed() == before


def test_the_keys_moments_are_spread_over_the_window():
    zone = ZoneInfo("America/Recife")
    window = 600
    day = date(2026, 5, 13)
    midnight_at = day_start(zone, day + timedelta(days=1))
    offsets = sorted((midnight_at - midnight.moment(StatsKey(f"clinic-{n}", zone.key, day), zone, window)).total_seconds()
                     for n in range(2000))
    assert midnight.MARGIN_SECONDS < offsets[0] and offsets[-1] <= window
    span = window - midnight.MARGIN_SECONDS
    tenths = [0] * 10
    for offset in offsets:
        tenths[min(int((offset - midnight.MARGIN_SECONDS) / span * 10), 9)] += 1
    assert all(150 <= count <= 250 for count in tenths), tenths


@pytest.mark.parametrize("value", [-1, 60, 3601, 1.5, True, "600"])
def test_a_window_that_cannot_work_is_refused(make_app, value):
    from alignwork.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="STATS_PRECOMPUTE_SECONDS"):
        make_app(STATS_PRECOMPUTE_SECONDS=value)


def test_an_entry_is_never_served_for_a_date_it_was_not_computed_for(deploy):
    """The precomputed entry is under tomorrow's key: polls before midnight still get today's."""
    zone, day = "America/Recife", date(2026, 5, 13)
    app = deploy(zone)
    midnight_at = day_start(ZoneInfo(zone), day + timedelta(days=1))
    _book(app, midnight_at + timedelta(hours=1))
    _book(app, midnight_at - timedelta(hours=1), "pending")
    seen = _poll_through(app, zone, midnight_at - timedelta(minutes=11), midnight_at - timedelta(seconds=1))
    assert seen
    with time_machine.travel(midnight_at - timedelta(seconds=1), tick=False):
        last = poll(app, zone)
        assert last.headers["X-Stats-Local-Date"] == day.isoformat()
        assert last.get_json() == expected(app, zone, day)


def test_a_safety_net_shorter_than_the_window_cuts_it(make_app):
    """An entry computed more than CACHE_DEFAULT_TIMEOUT before midnight would be recomputed when
    first read: the window ends where the safety net does, and a 30 s one leaves none."""
    with make_app(CACHE_DEFAULT_TIMEOUT=400).app_context():
        assert midnight.window() == 400 - midnight.MARGIN_SECONDS
    with make_app(cache="simple").app_context():
        assert midnight.window() == 0
