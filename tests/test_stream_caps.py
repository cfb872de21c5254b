"""A tenant's stream cap counts its streams on every worker, not per process: each stream holds a
place in the tenant's set in the shared cache (``StatsBackend.hold_slot``), which a dead
worker's streams give up when their time runs out. On real Redis (the cluster's variant is held to
the same rules in test_cache_cluster.py) and against three gunicorn workers."""

from __future__ import annotations

import time
import uuid

from alignwork.cache.backend import stats_backend
from alignwork.cache.keys import streams_key
from tests.test_gunicorn import _no_server_outlives_its_test, _running  # noqa: F401
from tests.test_stream import _schemas, _start


def check_places(app) -> None:
    """The rules of ``hold_slot``, ``renew_slots`` and ``release_slot`` on ``app``'s cache."""
    key = streams_key("t" + uuid.uuid4().hex[:8])
    with app.app_context():
        backend = stats_backend()
        backend.delete_matching(key)
        assert [backend.hold_slot(key, holder, 2, 30) for holder in "abc"] == [True, True, False]
        assert backend.hold_slot(key, "a", 2, 30) is True  # a holder renewing is not a newcomer
        backend.release_slot(key, "a")
        assert backend.hold_slot(key, "c", 2, 30) is True and backend.hold_slot(key, "a", 2, 30) is False

        # A place runs out unless renewed: "b" is renewed, "c" is not, so one place comes free.
        assert backend.hold_slot(key, "b", 2, 0.4) and backend.hold_slot(key, "c", 2, 0.4)
        backend.renew_slots({key: ["b"]}, 30)
        time.sleep(0.6)
        assert backend.hold_slot(key, "d", 2, 30) is True and backend.hold_slot(key, "e", 2, 30) is False

        # A place the cache lost is put back by its holder's renewal: its stream is still open.
        backend.delete_matching(key)
        backend.renew_slots({key: ["b", "d"]}, 30)
        assert backend.hold_slot(key, "f", 2, 30) is False
        backend.delete_matching(key)


def test_places_on_redis(make_app):
    check_places(make_app(cache="redis"))


def test_in_process_caches_leave_the_count_to_the_process(make_app):
    with make_app(cache="simple").app_context():
        assert all(stats_backend().hold_slot("streams:{x}", str(n), 1, 30) for n in range(3))


def test_a_tenants_cap_counts_its_streams_on_every_worker(tmp_path):
    stack = _start(tmp_path, "postgresql-redis", workers=3, env={"ALIGNWORK_STREAMS_PER_TENANT": "2"})
    try:
        _, token, _ = stack.tenant()
        _, other_token, _ = stack.tenant()
        # One connection each: the kernel hands them to whichever worker accepts first, so with a
        # count per process up to six would be let in.
        tries = [stack.open(token) for _ in range(6)]
        held = [events for events in tries if events.status == 200]
        assert sorted(events.status for events in tries) == [200, 200] + [429] * 4
        assert all(int(events.response.getheader("Retry-After")) > 0 for events in tries if events.status == 429)
        assert stack.open(other_token).status == 200  # another tenant's count is its own

        held[0].close()  # its worker gives the place up when it notices (a keep-alive, within a second)
        deadline = time.monotonic() + 5
        while (again := stack.open(token)).status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert again.status == 200
        assert stack.open(token).status == 429
    finally:
        stack.server.stop()
        stack.engine.dispose()
        _schemas.close()

