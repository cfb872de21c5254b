"""The reconciliation handshake after an outage (``cache/reconciliation.py``), against a real
redis-server: it survives FLUSHALL (requests are matched by identity, not by a counter), and a
worker that receives no request after Redis returns is reconciled all the same (its listener's
probe asks), so its gate never opens by timeout while a listener runs."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from prometheus_client import REGISTRY

from tests.conftest import Builder
from tests.redis_servers import RedisServer
from tests.test_cache_outage import _book_with_raw_sql, _confirmed, _get, listening  # noqa: F401
from tests.test_cache_outage import _stop_listeners  # noqa: F401 (a fixture)

BACKOFF = 0.6


@pytest.fixture(autouse=True)
def afternoon():
    with time_machine.travel(datetime(2026, 5, 13, 14, tzinfo=timezone.utc), tick=True):
        yield


def _unreconciled() -> float:
    return REGISTRY.get_sample_value("alignwork_cache_unreconciled_total") or 0.0


def _timeouts(caplog) -> list:
    return [r for r in caplog.records if "No change listener reconciled" in r.getMessage()]


def _deployment(make_app, server):
    """A writer without a listener (another service) and a worker with one."""
    settings = {"cache": "redis", "CACHE_REDIS_URL": server.url, "CACHE_BACKOFF_SECONDS": BACKOFF}
    writer = make_app(shared_as="deployment", **settings)
    worker = listening(make_app(shared_as="deployment", create_schema=False, **settings))
    Builder(writer).tenant("acme")
    patient = Builder(writer).patient("acme")
    soon = datetime.now(timezone.utc) + timedelta(minutes=10)
    Builder(writer).appointments("acme", [(soon, "confirmed")])
    client = worker.test_client()
    assert [_get(client)[0] for _ in range(2)] == ["MISS", "HIT"]
    return writer, worker, patient


def test_a_worker_with_no_request_after_an_outage_is_reconciled_by_its_listener(make_app, tmp_path, caplog):
    """Redis restarts from its file with the entry from before a write it never received, and
    the worker gets no request for longer than the wait: its first poll is from the cache, shows
    the write, and the gate was opened by a catch-up, not by the timeout."""
    caplog.set_level(logging.INFO, logger="alignwork")
    server = RedisServer(tmp_path, persist=True).start()
    try:
        writer, worker, patient = _deployment(make_app, server)
        before = _confirmed(_get(worker.test_client())[1])
        unreconciled = _unreconciled()
        server.stop()
        _book_with_raw_sql(writer, patient)  # its replay stays in the writer, which never reads again
        time.sleep(1.0)  # the worker's listener probe finds Redis away
        server.start()
        time.sleep(6.5)  # longer than the wait, without a request
        outcome, counts, _ = _get(worker.test_client())
        assert (outcome, _confirmed(counts)) == ("HIT" if outcome == "HIT" else "MISS", before + 1)
        assert outcome != "BYPASS"
        assert _timeouts(caplog) == [] and _unreconciled() == unreconciled
    finally:
        server.stop()


def test_the_handshake_survives_flushall_every_half_second(make_app, tmp_path, caplog):
    """After an outage, FLUSHALL keeps emptying the requests, the answers and the cache: the
    worker is reconciled all the same (it asks again), never by the timeout."""
    caplog.set_level(logging.INFO, logger="alignwork")
    server = RedisServer(tmp_path).start()
    stop = threading.Event()

    def flush() -> None:
        while not stop.wait(0.5):
            try:
                server.client().flushall()
            except OSError:
                pass

    try:
        _, worker, _ = _deployment(make_app, server)
        client = worker.test_client()
        unreconciled = _unreconciled()
        for round_ in range(3):  # the listener's earlier answers must not stand in for new ones
            server.stop()
            assert _get(client)[0] == "BYPASS"
            flusher = threading.Thread(target=flush, daemon=True)
            server.start()
            stop.clear()
            flusher.start()
            try:
                back = time.monotonic()
                outcomes = []
                while time.monotonic() - back < 4.0 and (not outcomes or outcomes[-1] == "BYPASS"):
                    outcomes.append(_get(client)[0])
                    time.sleep(0.02)
            finally:
                stop.set()
                flusher.join()
            assert outcomes[-1] != "BYPASS", f"round {round_}: still waiting after 4 s"
            assert _timeouts(caplog) == [] and _unreconciled() == unreconciled
    finally:
        stop.set()
        server.stop()
