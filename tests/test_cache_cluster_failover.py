"""Redis Cluster failing under a real gunicorn: 3 primaries with a replica each,
``cluster-require-full-coverage no``, dashboards polling a dozen tenants spread over the
primaries and one booking a second. A failed primary takes only its own slots to BYPASS, no poll
fails, and no poll misses a booking whose 201 had returned before it was sent."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from tests.background import Running
from tests.conftest import require_redis
from tests.redis_servers import Cluster, wait_for
from tests.test_gunicorn import Server, _no_server_outlives_its_test, zone_far_from_midnight  # noqa: F401

STATS = "/api/v1/appointments/mega-stats"
TENANTS = 12


@pytest.fixture
def cluster(tmp_path):
    require_redis()
    setup = Cluster(tmp_path / "cluster", size=3, replicas=1, full_coverage=False).start()
    yield setup
    setup.stop()


@pytest.fixture
def deployment(tmp_path, cluster):
    prefix = f"alignwork-failover-{uuid.uuid4().hex[:8]}:"
    server = Server(tmp_path, workers=3, cache_env={
        "ALIGNWORK_CACHE_TYPE": "RedisClusterCache", "ALIGNWORK_CACHE_REDIS_CLUSTER": cluster.startup_nodes,
        "ALIGNWORK_CACHE_KEY_PREFIX": prefix})  # the default 5 s back-off: a probe must end it
    database = server.env["ALIGNWORK_SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(" ")
    tenants = {}
    with sqlite3.connect(database) as conn:  # as another service would add them
        for n in range(TENANTS):
            tenant = f"clinic-{n}"
            conn.execute("INSERT INTO tenants (id, name, timezone, created_at) VALUES (?, ?, ?, ?)",
                         (tenant, tenant, zone_far_from_midnight(), now))
            patient = conn.execute("INSERT INTO patients (tenant_id, name, created_at) VALUES (?, 'Ana', ?)",
                                   (tenant, now)).lastrowid
            tenants[tenant] = (server.sign(tenant), patient, cluster.node_of(f"{prefix}gen:{{{tenant}}}"))
    yield server, tenants
    server.stop()


class Traffic(Running):
    """Polls every tenant in turn from 4 threads, and books for them in turn once a second."""

    def __init__(self, server: Server, tenants: dict):
        self.server, self.tenants = server, tenants
        self.polls: list[tuple[float, str, int, str | None, int | None]] = []
        self.acknowledged: list[tuple[str, float]] = []
        self.failed_writes = 0
        super().__init__(*(lambda i=i: self._poll(i) for i in range(4)), self._write)

    def _poll(self, offset: int) -> None:
        names = list(self.tenants)
        n = offset
        while not self._stop.is_set():
            tenant = names[n % len(names)]
            n += 1
            sent = time.monotonic()
            try:
                status, outcome, body = self.server.request("GET", STATS, token=self.tenants[tenant][0])
            except OSError:
                status, outcome, body = 0, None, b""
            confirmed = None
            if status == 200:
                counts = json.loads(body)
                confirmed = counts["month"]["confirmed"] + counts["nextMonth"]["confirmed"]
            self.polls.append((sent, tenant, status, outcome, confirmed))
            time.sleep(0.01)

    def _write(self) -> None:
        names = list(self.tenants)
        n = 0
        while not self._stop.wait(1.0):
            tenant = names[n % len(names)]
            n += 1
            token, patient, _ = self.tenants[tenant]
            soon = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
            status = self.server.request("POST", "/api/v1/appointments", {
                "patientId": patient, "startsAt": soon, "durationMin": 30, "status": "confirmed"}, token)[0]
            if status == 201:
                self.acknowledged.append((tenant, time.monotonic()))
            else:
                self.failed_writes += 1

    def stale(self) -> list[tuple]:
        return [p for p in self.polls if p[2] == 200 and p[4] < sum(
            1 for tenant, at in self.acknowledged if tenant == p[1] and at < p[0])]

    def between(self, start: float, end: float) -> list[tuple]:
        return [p for p in self.polls if start <= p[0] < end]


def _steady(traffic: Traffic) -> None:
    wait_for(lambda: Counter(p[3] for p in traffic.polls[-24:])["HIT"] >= 16, 30, "no steady HITs")


def test_one_primary_killed_takes_only_its_slots_to_bypass(deployment, cluster):
    server, tenants = deployment
    victim = Counter(node.port for _, _, node in tenants.values()).most_common(1)[0][0]
    victim = next(n for n in cluster.nodes if n.port == victim)
    replica = cluster.replicas_of(victim)[0]
    elsewhere = {t for t, (_, _, node) in tenants.items() if node is not victim}
    with Traffic(server, tenants) as traffic:
        _steady(traffic)
        killed = time.monotonic()
        victim.kill()
        wait_for(lambda: replica.client().info("replication")["role"] == "master", 30, "no promotion")
        promoted = time.monotonic()
        time.sleep(max(0.0, killed + 20 - time.monotonic()))
    window = traffic.between(killed, killed + 20)
    others = [p for p in window if p[1] in elsewhere]
    bypassed = sum(1 for p in others if p[3] == "BYPASS")
    assert {p[2] for p in traffic.polls} == {200}, [p for p in traffic.polls if p[2] != 200][:5]
    assert traffic.failed_writes == 0
    assert traffic.stale() == [], traffic.stale()[:5]
    # Measured 0 of about 2,800 in each of four runs on a loaded 2-core machine (docs/architecture.md);
    # the guard is the 1 %. What it catches: a breaker per process (every tenant to BYPASS for
    # whole back-off periods), or a worker refusing to serve every tenant while one tenant's
    # invalidation waits for the dead primary.
    assert others and bypassed / len(others) <= 0.01, (bypassed, len(others))
    resumed = min((p[0] for p in traffic.polls if p[0] >= promoted and p[1] not in elsewhere and p[3] == "HIT"),
                  default=None)
    assert resumed is not None and resumed - promoted < 2.5, "the victim's tenants did not hit again"
    print(f"cluster failover: promoted {promoted - killed:.1f} s after the kill; its tenants hit again "
          f"{resumed - promoted:.2f} s after promotion; others bypassed {bypassed} of {len(others)}")


def test_a_shard_lost_whole_and_restarted_empty_serves_nothing_stale(deployment, cluster):
    server, tenants = deployment
    victim = next(iter(tenants.values()))[2]
    replica = cluster.replicas_of(victim)[0]
    with Traffic(server, tenants) as traffic:
        _steady(traffic)
        replica.kill()
        victim.kill()
        time.sleep(4)
        victim.start()
        replica.start()
        wait_for(lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in cluster.nodes), 30,
                 "the cluster did not recover")
        recovered = time.monotonic()
        _steady(traffic)
        time.sleep(3)
    assert {p[2] for p in traffic.polls} == {200}
    assert traffic.failed_writes == 0
    assert traffic.stale() == [], traffic.stale()[:5]
    assert any(p[3] == "HIT" for p in traffic.polls if p[0] > recovered and tenants[p[1]][2] is victim)
