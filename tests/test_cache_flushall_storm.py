"""FLUSHALL every 0.5 s and computations whose locks are deleted while held, under polling and
writes, on a real gunicorn (3 workers, PostgreSQL, a Redis of the test's own): neither is an
outage. No poll fails or misses a write whose 201 had returned before it was sent, and 1 s after
the storm stops no poll is BYPASS and no worker opened its gate unreconciled."""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import pytest

from tests.background import Running
from tests.conftest import postgres_schema, require_postgres, require_redis
from tests.redis_servers import RedisServer
from tests.test_freshness import _schema_url
from tests.test_gunicorn import Server, _no_server_outlives_its_test  # noqa: F401 (a fixture)
from tests.test_cache_sentinel import Poller, Writer

STORM_SECONDS = 8.0


@pytest.fixture
def deployment(tmp_path):
    require_postgres()
    require_redis()
    redis_server = RedisServer(tmp_path).start()
    prefix = "alignwork-storm:"
    try:
        with postgres_schema() as schema:
            server = Server(tmp_path, workers=3, cache_env={
                "ALIGNWORK_SQLALCHEMY_DATABASE_URI": _schema_url(schema),
                "ALIGNWORK_CACHE_TYPE": "RedisCache", "ALIGNWORK_CACHE_REDIS_URL": redis_server.url,
                "ALIGNWORK_CACHE_KEY_PREFIX": prefix})
            yield server, redis_server, prefix
            server.stop()
    finally:
        redis_server.stop()


class Storm(Running):
    """FLUSHALL every 0.5 s; meanwhile every lock key found is deleted, as soon as it is seen."""

    def __init__(self, redis_server: RedisServer, prefix: str):
        self.client = redis_server.client()
        self.pattern = f"{prefix}lock:*"
        self.flushes = self.locks_deleted = 0
        super().__init__(self._flush, self._steal)

    def _flush(self) -> None:
        while not self._stop.wait(0.5):
            self.client.flushall()
            self.flushes += 1

    def _steal(self) -> None:
        while not self._stop.wait(0.002):
            for key in self.client.scan_iter(match=self.pattern, count=1000):
                self.locks_deleted += self.client.delete(key)


class FastWriter(Writer):
    """A booking every 0.3 s: writes keep making MISSes, so computations (and locks) keep running."""

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            if self.server.book(self.patient) == 201:
                self.acknowledged.append(time.monotonic())
            else:
                self.failed += 1


def _metric(text: str, name: str) -> float:
    return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_flushall_and_lost_locks_under_writes_are_not_an_outage(deployment):
    server, redis_server, prefix = deployment
    patient = json.loads(server.request("POST", "/api/v1/patients", {"name": "Ana"}, server.token)[2])
    with Poller(server) as poller, FastWriter(server, patient["id"]) as writer:
        time.sleep(2.0)
        with Storm(redis_server, prefix) as storm:
            started = time.monotonic()
            time.sleep(STORM_SECONDS)
        stopped = time.monotonic()
        time.sleep(3.0)
    status, _, body = server.request("GET", "/metrics", token=server.admin)
    assert status == 200
    log = server.stop()
    assert {a[1] for a in poller.answers} == {200}, [a for a in poller.answers if a[1] != 200][:5]
    assert writer.failed == 0 and len(writer.acknowledged) >= 20
    assert writer.stale(poller.answers) == [], writer.stale(poller.answers)[:5]
    during = Counter(a[2] for a in poller.answers if started <= a[0] < stopped)
    after = [a for a in poller.answers if a[0] >= stopped + 1.0]
    assert after and [a for a in after if a[2] == "BYPASS"] == []
    text = body.decode()
    assert storm.flushes >= STORM_SECONDS / 0.5 - 2 and storm.locks_deleted > 0
    assert _metric(text, "alignwork_cache_locks_lost_total") > 0  # computations lost their locks
    assert _metric(text, "alignwork_cache_unreconciled_total") == 0
    assert "No change listener reconciled" not in log and "unavailable" not in log and "Traceback" not in log
    print(f"storm: {storm.flushes} FLUSHALLs, {storm.locks_deleted} locks deleted "
          f"({_metric(text, 'alignwork_cache_locks_lost_total'):.0f} lost while held), {len(writer.acknowledged)} "
          f"writes; polls during it {dict(during)}; {len(after)} polls from 1 s after it, none BYPASS, none stale")
