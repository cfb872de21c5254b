"""A computation's lock that vanishes while held (FLUSHALL, eviction, a computation outlasting
the lock) is not an outage: only a failed connection or a timeout opens the circuit breaker.
A lost lock is counted (``alignwork_cache_locks_lost_total``) and logged at debug level, and
the next poll is served from the cache as before."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from alignwork.cache.backend import stats_backend
from tests.conftest import Builder

pytestmark = pytest.mark.usefixtures("afternoon")  # entries are per local date

STATS = "/api/v1/appointments/mega-stats?tenantId=acme"


@pytest.fixture
def server(private_redis):
    return private_redis


def _locks_lost() -> float:
    return REGISTRY.get_sample_value("alignwork_cache_locks_lost_total") or 0.0


@pytest.fixture
def app(make_app, server):
    app = make_app(cache="redis", CACHE_REDIS_URL=server.url, CACHE_BACKOFF_SECONDS=5)
    Builder(app).tenant("acme")
    soon = datetime.now(timezone.utc) + timedelta(minutes=10)
    Builder(app).appointments("acme", [(soon, "confirmed")])
    return app


@pytest.mark.parametrize("lose", ["flushall", "delete", "expire"])
def test_a_lock_lost_while_held_is_counted_not_an_outage(app, server, caplog, lose):
    caplog.set_level(logging.DEBUG, logger="alignwork")
    client = app.test_client()
    assert client.get(STATS).headers["X-Cache"] == "MISS"
    before = _locks_lost()
    with app.app_context():
        backend = stats_backend()
        with backend.lock("lock:probe", timeout=0.2 if lose == "expire" else 10, wait=0) as acquired:
            assert acquired
            if lose == "flushall":
                server.client().flushall()
            elif lose == "delete":
                server.client().delete(backend.stored_key("lock:probe"))
            else:
                server.client().pexpire(backend.stored_key("lock:probe"), 1)  # outlasted
            time.sleep(0.05)
        assert backend._down_until == {}  # the breaker stayed closed
    assert _locks_lost() == before + 1
    assert [r.levelname for r in caplog.records if "lock" in r.getMessage() and "gone" in r.getMessage()] == ["DEBUG"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # Served from the cache at once: no BYPASS, no back-off.
    outcomes = [client.get(STATS).headers["X-Cache"] for _ in range(3)]
    assert "BYPASS" not in outcomes and outcomes[-1] == "HIT", outcomes


def test_a_refused_command_fails_that_call_only(app, server, caplog):
    """A server that answers with an error (here: a key of another type) is not away."""
    client = app.test_client()
    assert client.get(STATS).headers["X-Cache"] == "MISS"
    with app.app_context():
        backend = stats_backend()
        server.client().sadd(backend.stored_key("wrong-type"), "x")
        assert backend.inc("wrong-type") is None  # failed open
        assert backend._down_until == {}
    assert client.get(STATS).headers["X-Cache"] == "HIT"
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
