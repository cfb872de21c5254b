"""RedisSentinelCache on a master, a replica and three sentinels: reads go to the master, and a
real gunicorn keeps answering every poll while the master dies and Sentinel promotes the replica.

The servers are started once for the module; the failover test runs last, since it kills the
master."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.background import Running
from tests.conftest import Builder
from tests.redis_servers import MASTER_NAME, SentinelSetup, wait_for
from tests.test_gunicorn import Server, _no_server_outlives_its_test  # noqa: F401 (a fixture)

STATS = "/api/v1/appointments/mega-stats"
BACKOFF = 0.3


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory):
    setup = SentinelSetup(tmp_path_factory.mktemp("sentinel")).start()
    yield setup
    setup.stop()


def _settings(sentinels, prefix: str) -> dict:
    return {"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": sentinels.addresses,
            "CACHE_REDIS_SENTINEL_MASTER": MASTER_NAME, "CACHE_KEY_PREFIX": prefix,
            "CACHE_BACKOFF_SECONDS": BACKOFF}


@pytest.mark.usefixtures("afternoon")  # a MISS, then HITs: all on one local date
def test_reads_go_to_the_master_not_a_lagging_replica(make_app, sentinels):
    prefix = f"alignwork-test-{uuid.uuid4().hex[:8]}:"
    app = make_app(**_settings(sentinels, prefix))
    Builder(app).tenant("acme")
    client = app.test_client()
    assert client.get(f"{STATS}?tenantId=acme").headers["X-Cache"] == "MISS"
    sentinels.replica.pause()  # a replica that answers nothing, as a lagging one answers late
    try:
        assert [client.get(f"{STATS}?tenantId=acme").headers["X-Cache"] for _ in range(3)] == ["HIT"] * 3
    finally:
        sentinels.replica.resume()
    assert sentinels.master.client().exists(f"{prefix}gen:{{acme}}")


class Poller(Running):
    """Polls mega-stats from several threads until stopped, recording every answer:
    (sent, status, X-Cache, confirmed appointments this month and next)."""

    def __init__(self, server: Server, threads: int = 4):
        self.server = server
        self.answers: list[tuple[float, int, str | None, int | None]] = []
        super().__init__(*[self._run] * threads)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                status, outcome, body = self.server.stats()
            except OSError as exc:
                status, outcome, body = 0, type(exc).__name__, b""
            confirmed = None
            if status == 200:
                counts = json.loads(body)
                confirmed = counts["month"]["confirmed"] + counts["nextMonth"]["confirmed"]
            self.answers.append((sent, status, outcome, confirmed))
            time.sleep(0.01)

    def since(self, moment: float) -> list[tuple]:
        return [answer for answer in self.answers if answer[0] >= moment]


class Writer(Running):
    """One booking a second through the API, recording when each 201 arrived."""

    def __init__(self, server: Server, patient: int):
        self.server, self.patient = server, patient
        self.acknowledged: list[float] = []
        self.failed = 0
        super().__init__(self._run)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            if self.server.book(self.patient) == 201:
                self.acknowledged.append(time.monotonic())
            else:
                self.failed += 1

    def stale(self, answers: list[tuple]) -> list[tuple]:
        """Polls that missed a booking acknowledged before they were sent."""
        return [a for a in answers if a[1] == 200
                and a[3] < sum(1 for acknowledged in self.acknowledged if acknowledged < a[0])]


def test_failover_under_load_and_writes_fails_no_poll_serves_nothing_stale_and_caching_resumes(
        tmp_path, sentinels):
    """The master is killed under polling and one booking a second. A write whose cache update
    the dead master took with it is reconciled by the listener before any worker serves the
    promoted replica again."""
    prefix = f"alignwork-gunicorn-{uuid.uuid4().hex[:8]}:"
    env = {f"ALIGNWORK_{key}": value if isinstance(value, str) else json.dumps(value)
           for key, value in _settings(sentinels, prefix).items()}
    server = Server(tmp_path, workers=2, cache_env=env)
    try:
        patient = json.loads(server.request("POST", "/api/v1/patients", {"name": "Ana"}, server.token)[2])
        assert server.stats()[0] == 200
        old_master = sentinels.master.port
        with Poller(server) as poller, Writer(server, patient["id"]) as writer:
            wait_for(lambda: "HIT" in [a[2] for a in poller.answers[-8:]], 20, "no HITs")
            killed = time.monotonic()
            sentinels.master.kill()
            wait_for(lambda: sentinels.master_port() != old_master, 30,
                     "Sentinel did not promote the replica")
            promoted = time.monotonic()
            wait_for(lambda: any(a[2] == "HIT" for a in poller.since(promoted)), 20,
                     "caching did not resume on the new master")
            resumed = min(a[0] for a in poller.since(promoted) if a[2] == "HIT")
            time.sleep(3)  # and more writes on the new master
        during = poller.since(killed)
        assert {status for _, status, _, _ in poller.answers} == {200}, \
            [a for a in poller.answers if a[1] != 200][:5]
        assert "BYPASS" in {outcome for _, _, outcome, _ in during}  # the outage was seen, and answered
        assert writer.failed == 0 and len(writer.acknowledged) >= 3
        assert writer.stale(poller.answers) == []
        assert sentinels.master_port() == sentinels.replica.port
    finally:
        log = server.stop()
    assert "Traceback" not in log
    print(f"failover: promoted after {promoted - killed:.1f} s, HITs again {resumed - promoted:.2f} s after "
          f"promotion; {len(during)} polls judged from the kill on, none stale")
    assert resumed - promoted < 1.0
