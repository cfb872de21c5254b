"""The cached mega-stats: HIT/MISS, keys per tenant, zone and local date, invalidation,
one computation under a stampede. Every test runs on SimpleCache and on a real Redis."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import event, insert, text

from alignwork.extensions import cache, db
from alignwork.models import Tenant
from alignwork.services import appointments
from alignwork.services.stats import answer as stats_answer, entries as stats_entries
from alignwork.services.exceptions import Conflict
from tests.conftest import Builder, count_statements, utc

STATS = "/api/v1/appointments/mega-stats"


def stats(client, tenant="acme", tz=None):
    url = f"{STATS}?tenantId={tenant}" + (f"&tz={tz}" if tz else "")
    response = client.get(url)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "private, no-cache"
    return response.headers["X-Cache"], response.get_json()


# A Wednesday afternoon in Recife, mid-month (and 23:00 in Tokyo): "five minutes from now"
# falls in today, this week and this month in every zone used below. The clock keeps ticking.
NOW = utc(2026, 5, 13, 14)


@pytest.fixture(autouse=True)
def mid_week():
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def acme(cached_app):
    build = Builder(cached_app)
    build.tenant("acme")
    build.tenant("rival")
    return build


@pytest.fixture
def client(cached_app):
    return cached_app.test_client()


def test_first_request_misses_then_hits(client, acme):
    first = stats(client)
    second = stats(client)
    assert (first[0], second[0]) == ("MISS", "HIT")
    assert first[1] == second[1]


def test_ten_sequential_requests_are_one_miss_and_nine_hits(client, acme):
    outcomes = [stats(client)[0] for _ in range(10)]
    assert outcomes.count("MISS") == 1 and outcomes.count("HIT") == 9


def test_tenants_and_time_zones_never_share_an_entry(client, acme):
    now = datetime.now(ZoneInfo("America/Recife"))
    acme.appointments("acme", [(now.astimezone(ZoneInfo("UTC")), "confirmed")])
    assert stats(client, "acme")[0] == "MISS"
    rival = stats(client, "rival")
    assert rival[0] == "MISS" and rival[1]["today"] == {"confirmed": 0, "pending": 0}
    assert stats(client, "acme", "Asia/Tokyo")[0] == "MISS"
    assert stats(client, "acme", "Asia/Tokyo")[0] == "HIT"
    assert stats(client, "acme")[1]["month"]["confirmed"] == 1


def test_a_due_entry_is_recomputed(make_app, cache_backend):
    app = make_app(cache=cache_backend, CACHE_DEFAULT_TIMEOUT=1)
    Builder(app).tenant("acme")
    client = app.test_client()
    assert stats(client)[0] == "MISS"
    assert stats(client)[0] == "HIT"
    time.sleep(1.1)
    assert stats(client)[0] == "MISS"


def test_entries_live_until_a_write_not_until_the_poll_interval(make_app, cache_backend):
    """Dashboards poll every 30 s; an entry must outlive that, or every poll computes."""
    app = make_app(cache=cache_backend)
    Builder(app).tenant("acme")
    client = app.test_client()
    with time_machine.travel(NOW, tick=False) as clock:
        assert stats(client)[0] == "MISS"
        for _ in range(4):
            clock.shift(app.config["CACHE_DEFAULT_TIMEOUT"] / 4 - 0.5)
            assert stats(client)[0] == "HIT"


def test_a_due_entry_is_refreshed_by_one_poll_while_the_others_are_served(make_app, cache_backend, monkeypatch):
    app = make_app(cache=cache_backend, CACHE_DEFAULT_TIMEOUT=60)
    build = Builder(app)
    build.tenant("acme")
    client = app.test_client()
    assert stats(client)[0] == "MISS"
    real, computing = stats_entries.compute_stats, threading.Event()

    def slow(*args):
        computing.set()
        time.sleep(0.5)
        return real(*args)

    monkeypatch.setattr(stats_entries, "compute_stats", slow)
    with time_machine.travel(datetime.now() + timedelta(seconds=61), tick=True):
        refresher = threading.Thread(target=lambda: results.append(stats(client)))
        results: list = []
        refresher.start()
        assert computing.wait(5)
        started = time.perf_counter()
        served = stats(client)
        waited = time.perf_counter() - started
        refresher.join()
    assert served[0] == "HIT" and waited < 0.4  # not made to wait for the database
    assert results[0][0] == "MISS" and results[0][1] == served[1]


def test_a_hit_runs_no_sql(cached_app, client, acme):
    stats(client)
    with count_statements(cached_app) as seen:
        outcome, _ = stats(client)
    assert outcome == "HIT" and seen == []


def test_a_hit_runs_no_sql_in_a_worker_that_never_saw_the_tenant(make_app):
    """Another worker of the same deployment, started after the entry was stored: the tenant
    record comes from the shared cache with the entry."""
    first = make_app(cache="redis", shared_as="deployment")
    Builder(first).tenant("acme")
    assert stats(first.test_client())[0] == "MISS"
    fresh = make_app(cache="redis", shared_as="deployment", create_schema=False)
    stats_answer._zone_hints._zones.clear()  # nothing memoised in this process either
    with count_statements(fresh) as seen:
        outcome, _ = stats(fresh.test_client())
    assert outcome == "HIT" and seen == []


@pytest.mark.parametrize("database,cache_backend", [("sqlite", "simple"), ("postgresql", "redis")])
def test_hits_run_no_sql_with_a_thousand_tenants(make_app, database, cache_backend):
    app = make_app(database=database, cache=cache_backend)
    tenant_ids = [f"clinic-{n:04d}" for n in range(1000)]
    with app.app_context():
        db.session.execute(insert(Tenant), [{"id": t, "name": t, "timezone": "America/Recife"}
                                            for t in tenant_ids])
        db.session.commit()
    with app.app_context():  # warmed as polls would, without the HTTP round trips
        assert {stats_answer.get_stats(t).outcome.value for t in tenant_ids} == {"MISS"}
    stats_answer._zone_hints._zones.clear()
    client = app.test_client()
    with count_statements(app) as seen:
        outcomes = {stats(client, tenant)[0] for tenant in tenant_ids}
    assert outcomes == {"HIT"} and seen == []


def test_a_miss_runs_one_statement(cached_app, client, acme):
    stats(client)  # memoises the tenant record
    with count_statements(cached_app) as seen:
        outcome, _ = stats(client, tz="Europe/London")
    assert outcome == "MISS" and len(seen) == 1


# -- invalidation --------------------------------------------------------------------------


def _soon():
    return datetime.now(ZoneInfo("UTC")) + timedelta(minutes=5)


def test_create_invalidates_every_zone(client, acme):
    patient = acme.patient("acme")
    before = {tz: stats(client, tz=tz)[1] for tz in ("America/Recife", "Asia/Tokyo")}
    response = client.post("/api/v1/appointments", json={
        "tenantId": "acme", "patientId": patient, "startsAt": _soon().isoformat(),
        "durationMin": 30, "status": "confirmed"})
    assert response.status_code == 201
    for tz, old in before.items():
        outcome, new = stats(client, tz=tz)
        assert outcome == "MISS"
        assert new["month"]["confirmed"] + new["nextMonth"]["confirmed"] == \
            old["month"]["confirmed"] + old["nextMonth"]["confirmed"] + 1


@pytest.mark.parametrize("change", [
    {"status": "pending"},
    {"startsAt": "2099-01-01T12:00:00Z"},
])
def test_patch_invalidates(client, acme, change):
    [appointment] = acme.appointments("acme", [(_soon(), "confirmed")])
    assert stats(client)[1]["week"]["confirmed"] + stats(client)[1]["nextMonth"]["confirmed"] >= 1
    stats(client)
    counts_before = stats(client)[1]
    response = client.patch(f"/api/v1/appointments/{appointment}?tenantId=acme", json=change)
    assert response.status_code == 200
    outcome, counts = stats(client)
    assert outcome == "MISS"
    total = lambda c: c["month"]["confirmed"] + c["nextMonth"]["confirmed"]  # noqa: E731
    assert total(counts) == total(counts_before) - 1


def test_delete_invalidates(client, acme):
    [appointment] = acme.appointments("acme", [(_soon(), "pending")])
    assert stats(client)[0] == "MISS"
    before = stats(client)
    assert before[0] == "HIT"
    assert client.delete(f"/api/v1/appointments/{appointment}?tenantId=acme").status_code == 204
    outcome, counts = stats(client)
    assert outcome == "MISS"
    assert counts["today"]["pending"] + counts["month"]["pending"] + counts["nextMonth"]["pending"] == \
        before[1]["today"]["pending"] + before[1]["month"]["pending"] + before[1]["nextMonth"]["pending"] - 2


def test_a_write_leaves_other_tenants_cached(client, acme):
    stats(client, "rival")
    acme.appointments("acme", [(_soon(), "pending")])
    assert stats(client, "rival")[0] == "HIT"


def test_a_failed_write_does_not_invalidate(cached_app, client, acme):
    """The UPDATE reaches the database and matches no row (another process changed the
    appointment meanwhile), so the transaction rolls back after a flush."""
    [appointment_id] = acme.appointments("acme", [(_soon(), "pending")])
    stats(client)
    with count_statements(cached_app) as seen, cached_app.app_context():
        held = appointments.get_appointment("acme", appointment_id)  # the update builds on this read
        with db.engine.begin() as other_process:
            other_process.execute(text("UPDATE appointments SET version = version + 1 WHERE id = :id"),
                                  {"id": appointment_id})
        assert held.version == 1  # the other process has made it 2 since
        with pytest.raises(Conflict):
            appointments.update_appointment("acme", appointment_id, {"status": "confirmed"})
    assert any(sql.lstrip().upper().startswith("UPDATE APPOINTMENTS") for sql in seen)
    assert stats(client)[0] == "HIT"


# -- local midnight --------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["America/Recife", "Asia/Tokyo"])
def test_entries_roll_over_at_local_midnight(make_app, cache_backend, zone):
    """Keys carry the local date (with pre-computation off: test_midnight has it on)."""
    app = make_app(cache=cache_backend, CACHE_DEFAULT_TIMEOUT=3600, STATS_PRECOMPUTE_SECONDS=0)
    build = Builder(app)
    build.tenant("acme", timezone=zone)
    tz = ZoneInfo(zone)
    midnight = datetime(2026, 5, 13, tzinfo=tz)  # a Wednesday, mid-month
    build.appointments("acme", [
        ((midnight - timedelta(hours=2)).astimezone(ZoneInfo("UTC")), "confirmed"),
        ((midnight + timedelta(hours=9)).astimezone(ZoneInfo("UTC")), "pending"),
    ])
    client = app.test_client()
    with time_machine.travel(midnight - timedelta(seconds=1), tick=False):
        assert stats(client) == ("MISS", stats(client)[1])
        assert stats(client)[0] == "HIT"
        assert stats(client)[1]["today"] == {"confirmed": 1, "pending": 0}
    with time_machine.travel(midnight + timedelta(seconds=1), tick=False):
        outcome, counts = stats(client)
        assert outcome == "MISS"
        assert counts["today"] == {"confirmed": 0, "pending": 1}
        assert counts["week"] == {"confirmed": 1, "pending": 1}


def test_utc_midnight_is_not_a_rollover_for_recife(make_app, cache_backend):
    app = make_app(cache=cache_backend, CACHE_DEFAULT_TIMEOUT=3600)
    Builder(app).tenant("acme", timezone="America/Recife")
    client = app.test_client()
    with time_machine.travel(utc(2026, 5, 13, 23, 59, 59), tick=False):
        assert stats(client)[0] == "MISS"
    with time_machine.travel(utc(2026, 5, 14, 0, 0, 1), tick=False):
        assert stats(client)[0] == "HIT"   # still 13 May in Recife (UTC-3)


# -- bounded memory --------------------------------------------------------------------------


def test_unknown_tenants_create_no_entries(cached_app, client, acme):
    stats(client)
    with cached_app.app_context():
        size = cache.cache.size()
    for n in range(20):
        assert client.get(f"{STATS}?tenantId=ghost-{n}").status_code == 401  # token of no tenant
    with cached_app.app_context():
        assert cache.cache.size() == size


def test_simplecache_is_bounded_by_its_threshold(make_app):
    app = make_app(cache="simple", CACHE_THRESHOLD=40)
    Builder(app).tenant("acme")
    client = app.test_client()
    zones = ["America/Recife", "Asia/Tokyo", "Europe/London", "America/New_York", "Asia/Kolkata",
             "Australia/Sydney", "Africa/Cairo", "Europe/Paris", "America/Lima", "Asia/Dubai"]
    for day in range(10):
        with time_machine.travel(utc(2026, 1, 1 + day, 12), tick=False):
            for zone in zones:
                stats(client, tz=zone)
    with app.app_context():
        assert cache.cache.size() <= 40


# -- stampede --------------------------------------------------------------------------------


# 32 threads on two cores can keep one off the CPU for longer than the production socket
# timeout; a timeout would (rightly) bypass the cache, which is not what these tests are about.
PATIENT_REDIS = {"CACHE_REDIS_SOCKET_TIMEOUT": 5}


def _slow_stats_statements(app, seen: list, delay: float = 0.3):
    """Make the stats statement take ``delay`` seconds so concurrent requests overlap."""

    def before(conn, cursor, statement, *args):
        if "FILTER" in statement:
            seen.append(statement)
            time.sleep(delay)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", before)


def _release_together(clients, n=32):
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def worker(index):
        client = clients[index % len(clients)]
        barrier.wait()
        try:
            outcomes.append(stats(client)[0])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return outcomes


def test_stampede_on_a_cold_key_computes_once(make_app, cache_backend):
    app = make_app(cache=cache_backend, **PATIENT_REDIS)
    Builder(app).tenant("acme")
    computations: list[str] = []
    _slow_stats_statements(app, computations)
    outcomes = _release_together([app.test_client()], n=32)
    assert len(computations) == 1
    assert sorted(outcomes) == ["HIT"] * 31 + ["MISS"]


def test_stampede_across_two_app_instances_sharing_redis(make_app):
    first = make_app(cache="redis", shared_as="deployment", **PATIENT_REDIS)
    second = make_app(cache="redis", shared_as="deployment", create_schema=False, **PATIENT_REDIS)
    Builder(first).tenant("acme")
    computations: list[str] = []
    for app in (first, second):
        _slow_stats_statements(app, computations)
    outcomes = _release_together([first.test_client(), second.test_client()], n=32)
    assert len(computations) == 1
    assert outcomes.count("MISS") == 1 and outcomes.count("HIT") == 31


def _commands(server) -> int:
    return server.client().info("stats")["total_commands_processed"]


@pytest.mark.usefixtures("afternoon")
def test_waiters_in_one_process_wait_for_one_read_through_not_on_the_cache(make_app, private_redis):
    """32 requests for one cold entry in one process (a gevent worker holds that many): one
    takes the cache's lock and computes, the others wait for it in the process. Polling the cache
    every 10 ms each, they sent about a hundred reads a second apiece."""
    app = make_app(cache="redis", CACHE_REDIS_URL=private_redis.url, **PATIENT_REDIS)
    Builder(app).tenant("acme")
    computations: list[str] = []
    _slow_stats_statements(app, computations, delay=0.5)
    before = _commands(private_redis)
    outcomes = _release_together([app.test_client()], n=32)
    sent = _commands(private_redis) - before
    assert len(computations) == 1
    assert sorted(outcomes) == ["HIT"] * 31 + ["MISS"]
    # A cold request reads two or three keys, and the one computing about ten: 122 here.
    # Polling every 10 ms for the 0.5 s computation, the waiters sent 1,759.
    assert sent < 32 * 6, f"{sent} commands for 32 requests"


@pytest.mark.usefixtures("afternoon")
def test_a_request_after_a_write_does_not_take_the_answer_of_one_from_before_it(make_app, monkeypatch):
    """A request that read the generation a write left must not be handed the answer of a
    request still computing from before that write: the flight is the entry's key *and* the
    generation read."""
    app = make_app(database="postgresql", cache="redis", **PATIENT_REDIS)
    build = Builder(app)
    build.tenant("acme")
    patient = build.patient("acme")
    counted, release = threading.Event(), threading.Event()

    def after(conn, cursor, statement, *args):
        if "FILTER" in statement and not counted.is_set():
            counted.set()  # the first request has its counts (no write yet) and holds its flight
            release.wait(10)

    with app.app_context():
        event.listen(db.engine, "after_cursor_execute", after)
    share = stats_answer._flights.share

    def share_then_release(key, lead, wait):  # the second request: in the air beside the first
        if counted.is_set():
            threading.Timer(0.3, release.set).start()
        return share(key, lead, wait)

    monkeypatch.setattr(stats_answer._flights, "share", share_then_release)
    first: list = []
    early = threading.Thread(target=lambda: first.append(stats(app.test_client())))
    early.start()
    assert counted.wait(10)
    build.appointments("acme", [(_soon(), "confirmed")], patient_id=patient)  # committed, and the cache told
    outcome, after_write = stats(app.test_client())
    early.join(10)
    assert release.is_set()
    assert first[0][1]["today"]["confirmed"] == 0  # what the first request counted, before the write
    assert (outcome, after_write["today"]["confirmed"]) == ("MISS", 1)


def test_a_waiter_that_times_out_computes_by_itself(make_app, cache_backend):
    app = make_app(cache=cache_backend, STATS_LOCK_WAIT_SECONDS=0.05, **PATIENT_REDIS)
    Builder(app).tenant("acme")
    computations: list[str] = []
    _slow_stats_statements(app, computations, delay=0.5)
    outcomes = _release_together([app.test_client()], n=4)
    assert len(outcomes) == 4 and set(outcomes) == {"MISS"}
    assert len(computations) == 4


def test_a_write_on_one_instance_invalidates_the_other(make_app):
    first = make_app(cache="redis", shared_as="deployment")
    second = make_app(cache="redis", shared_as="deployment", create_schema=False)
    build = Builder(first)
    build.tenant("acme")
    stats(second.test_client())
    assert stats(second.test_client())[0] == "HIT"
    build.appointments("acme", [(_soon(), "confirmed")])
    assert stats(second.test_client())[0] == "MISS"


def test_counts_read_before_a_racing_write_are_never_served_after_it(cached_app, client, acme, monkeypatch):
    """The generation is taken before the database: a computation that read its counts just
    before a write committed stores them under the generation that write retired."""
    patient = acme.patient("acme")
    real = stats_entries.compute_stats
    raced = []

    def compute_then_write(*args):
        counts = real(*args)
        if not raced:  # another request's write commits after our read, before we store
            raced.append(acme.appointments("acme", [(_soon(), "confirmed")], patient_id=patient))
        return counts

    monkeypatch.setattr(stats_entries, "compute_stats", compute_then_write)
    outcome, stale = stats(client)
    assert outcome == "MISS" and stale["today"]["confirmed"] == 0
    outcome, fresh = stats(client)
    assert outcome == "MISS" and fresh["today"]["confirmed"] == 1
    assert stats(client) == ("HIT", fresh)
