"""The reconciliation handshake after an outage (``cache/reconciliation.py``), against a real
redis-server: it survives FLUSHALL of its request or of its answer (requests are matched by
identity, not by a counter), and a worker that receives no request after Redis returns is
reconciled all the same (its listener's probe asks), so its gate never opens by timeout while
a listener runs."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from alignwork.cache.keys import RECONCILE_ASKS, RECONCILED_ASKS
from tests.conftest import Builder
from tests.redis_servers import RedisServer, wait_for
from tests.test_cache_outage import _book_with_raw_sql, _confirmed, _get, listening  # noqa: F401
from tests.test_cache_outage import _stop_listeners  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("afternoon")  # entries are per local date

BACKOFF = 0.6


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


def test_the_handshake_survives_flushall_of_its_request_and_of_its_answer(make_app, tmp_path, caplog):
    """After an outage, a FLUSHALL takes the worker's request (or, when the listener was the
    quicker, its first answer), and another takes the next answer before the worker reads it:
    the worker is reconciled all the same (it asks again), never by the timeout. No request is
    sent until then, so only the worker's own listener asks (its probe) and nothing reads an
    answer before the test sees it: each erasure is made when its key is seen on the server,
    not at a time that may miss it."""
    caplog.set_level(logging.INFO, logger="alignwork")
    server = RedisServer(tmp_path).start()
    try:
        _, worker, _ = _deployment(make_app, server)
        prefix = worker.config["CACHE_KEY_PREFIX"]
        asks, answers = prefix + RECONCILE_ASKS, prefix + RECONCILED_ASKS
        client, unreconciled = worker.test_client(), _unreconciled()
        for round_ in range(3):  # the listener's earlier answers must not stand in for new ones
            server.stop()
            assert _get(client)[0] == "BYPASS"
            server.start()
            admin = server.client()
            wait_for(lambda: admin.exists(asks, answers), 3.0, f"round {round_}: the worker's listener asked")
            admin.flushall()
            wait_for(lambda: admin.exists(answers), 3.0, f"round {round_}: an answer after the first was erased")
            admin.flushall()
            wait_for(lambda: _get(client)[0] != "BYPASS", 3.0,
                     f"round {round_}: served from the cache after the answer was erased")
            assert _timeouts(caplog) == [] and _unreconciled() == unreconciled
    finally:
        server.stop()
