"""Redis down, hung or back: mega-stats keeps answering from the database, and recovers.

Each test starts its own redis-server on a free port, so it can be stopped without touching
the shared one. Each app runs a change listener, as every gunicorn worker does: after an outage
a worker serves from Redis again only once a listener has reconciled it with the database.
"""

from __future__ import annotations

import logging
import statistics
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from alignwork.extensions import db
from alignwork.services.changes import generations, listener
from tests.conftest import Builder
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.usefixtures("afternoon")  # entries are per local date

STATS = "/api/v1/appointments/mega-stats?tenantId=acme"
BACKOFF = 0.6


_listeners: list = []


@pytest.fixture(autouse=True)
def _stop_listeners(afternoon):
    """Stops the listeners a test started, before the clock goes back to today."""
    yield
    while _listeners:
        _listeners.pop().set()


def listening(app):
    """The app with a change listener running, as under gunicorn."""
    _listeners.append(listener.start(app))
    return app


def until_cached(client, seconds: float = 3.0):
    """Poll until an answer comes from the cache again; returns the answers meanwhile."""
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answers.append(_get(client))
        if answers[-1][0] != "BYPASS":
            break
        time.sleep(0.05)
    assert answers[-1][0] != "BYPASS", "caching did not resume"
    return answers


@pytest.fixture
def server(private_redis):
    return private_redis


def _app(make_app, server, debug=False):
    app = listening(make_app(cache="redis", CACHE_REDIS_URL=server.url, CACHE_BACKOFF_SECONDS=BACKOFF,
                             DEBUG=debug))
    build = Builder(app)
    build.tenant("acme")
    soon = datetime.now(timezone.utc) + timedelta(minutes=10)
    build.appointments("acme", [(soon, "confirmed"), (soon, "pending"), (soon, "cancelled")])
    return app


def _get(client, tz=None):
    started = time.perf_counter()
    response = client.get(STATS + (f"&tz={tz}" if tz else ""))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.headers["X-Cache"], response.get_json(), elapsed


def _outage_warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "unavailable" in r.getMessage()]


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_stopped_redis_is_bypassed_then_caching_resumes(make_app, server, caplog, debug):
    caplog.set_level(logging.INFO, logger="alignwork")
    app = _app(make_app, server, debug=debug)
    client = app.test_client()
    assert _get(client)[0] == "MISS"
    outcome, expected, _ = _get(client)
    assert outcome == "HIT"

    server.stop()
    during = [_get(client) for _ in range(15)]
    assert {d[0] for d in during} == {"BYPASS"}
    assert all(d[1] == expected for d in during)
    assert len(_outage_warnings(caplog)) == 1

    server.start()
    started = time.monotonic()
    answers = until_cached(client)
    assert time.monotonic() - started < 2.0
    assert all(a[1] == expected for a in answers)
    assert [answers[-1][0]] + [_get(client)[0] for _ in range(2)] == ["MISS", "HIT", "HIT"]
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_hung_redis_costs_one_timeout_per_backoff_not_per_request(make_app, server):
    app = _app(make_app, server)
    client = app.test_client()
    zones = ["Asia/Tokyo", "Europe/London", "Asia/Kolkata", "America/Lima", "Africa/Cairo",
             "Europe/Paris", "Asia/Dubai", "America/Chicago", "Australia/Perth"]
    misses = [_get(client, zone) for zone in zones]  # full requests that compute: the no-cache cost
    assert {m[0] for m in misses} == {"MISS"}

    server.pause()
    try:
        during = [_get(client) for _ in range(20)]
    finally:
        server.resume()
    assert {d[0] for d in during} == {"BYPASS"}
    timeout = app.config["CACHE_REDIS_SOCKET_TIMEOUT"]
    slow = [d for d in during if d[2] >= timeout]
    # One request pays the socket timeout per back-off period; the others skip Redis.
    assert len(slow) <= 1 + int(sum(d[2] for d in during) / BACKOFF)
    assert statistics.median(d[2] for d in during) < min(timeout, 5 * statistics.median(m[2] for m in misses) + 0.02)


def test_writes_succeed_while_redis_is_down(make_app, server):
    app = _app(make_app, server)
    client = app.test_client()
    patient = client.post("/api/v1/patients", json={"tenantId": "acme", "name": "Ana"}).get_json()["id"]
    server.stop()
    response = client.post("/api/v1/appointments", json={
        "tenantId": "acme", "patientId": patient, "durationMin": 30, "status": "confirmed",
        "startsAt": (datetime.now(timezone.utc) + timedelta(minutes=20)).isoformat()})
    assert response.status_code == 201
    outcome, counts, _ = _get(client)
    assert outcome == "BYPASS"
    assert counts["month"]["confirmed"] + counts["nextMonth"]["confirmed"] == 2


def _lost_invalidation_setup(make_app, server):
    settings = {"cache": "redis", "CACHE_REDIS_URL": server.url, "CACHE_BACKOFF_SECONDS": BACKOFF}
    writer = listening(make_app(shared_as="deployment", **settings))
    other = listening(make_app(shared_as="deployment", create_schema=False, **settings))
    Builder(writer).tenant("acme")
    patient = Builder(writer).patient("acme")
    assert _get(other.test_client())[0] == "MISS"
    assert _get(other.test_client())[0] == "HIT"
    return writer, other, patient


def _book(app, patient):
    response = app.test_client().post("/api/v1/appointments", json={
        "tenantId": "acme", "patientId": patient, "durationMin": 30, "status": "confirmed",
        "startsAt": (datetime.now(timezone.utc) + timedelta(minutes=20)).isoformat()})
    assert response.status_code == 201


def _confirmed(counts):
    return counts["month"]["confirmed"] + counts["nextMonth"]["confirmed"]


def test_a_write_made_while_redis_hangs_is_shown_by_every_worker_once_it_answers(make_app, server):
    """A write commits while Redis hangs: the writing process cannot know whether its
    invalidation arrived. No worker serves the old numbers after Redis answers again: each
    answers from the database until the listener has reconciled Redis, then from the cache."""
    writer, other, patient = _lost_invalidation_setup(make_app, server)
    before = _get(other.test_client())[1]
    server.pause()
    try:
        _book(writer, patient)
        with writer.app_context():
            assert generations._pending()._tenants == {"acme"}
    finally:
        server.resume()
    resumed = time.monotonic()
    for app in (writer, other):
        answers = until_cached(app.test_client())
        assert all(_confirmed(a[1]) == _confirmed(before) + 1 for a in answers), answers
    assert time.monotonic() - resumed < 2.0
    assert _get(other.test_client())[0] == "HIT"


def _book_with_raw_sql(app, patient):
    """A write whose tenants the app cannot tell: its replay retires every tenant."""
    with app.app_context():
        db.session.execute(text(
            "INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, "
            "created_at, updated_at, version) VALUES ('acme', :patient, :at, 30, 'confirmed', :at, :at, 1)"),
            {"patient": patient, "at": (datetime.now(timezone.utc) + timedelta(minutes=20)).replace(tzinfo=None)})
        db.session.commit()


@pytest.mark.parametrize("write", [_book, _book_with_raw_sql], ids=["api", "raw-sql"])
def test_a_replay_retires_entries_a_restarted_redis_brought_back(make_app, tmp_path, write):
    """Redis restarts from its append-only file with the entries and generation from before a
    write it never received: no worker serves them (it waits for the listener's catch-up)."""
    server = RedisServer(tmp_path, persist=True)
    server.start()
    try:
        writer, other, patient = _lost_invalidation_setup(make_app, server)
        before = _get(other.test_client())[1]
        server.stop()
        write(writer, patient)
        server.start()  # restored with the entries and generation from before the write
        for app in (other, writer):
            answers = until_cached(app.test_client())
            assert all(_confirmed(a[1]) == _confirmed(before) + 1 for a in answers), answers
        assert _get(other.test_client())[0] == "HIT"
    finally:
        server.stop()
