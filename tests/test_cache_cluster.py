"""RedisClusterCache on a real three-primary cluster: a HIT is still one MGET to one node, tenants
spread over the nodes, and locks, listing, invalidation and clearing work across slots."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, text

from alignwork import metrics
from alignwork.extensions import cache, db
from tests.conftest import Builder
from tests.ports import free_port
from tests.redis_servers import Cluster

pytestmark = pytest.mark.usefixtures("afternoon")  # entries are per local date

STATS = "/api/v1/appointments/mega-stats"
# Threads on two shared cores can keep one off the CPU longer than the production socket
# timeout, which would (rightly) bypass the cache; these tests are not about that.
PATIENT = {"CACHE_REDIS_SOCKET_TIMEOUT": 5}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def prefix() -> str:
    return f"alignwork-test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def app(make_app, cluster, prefix):
    app = make_app(CACHE_TYPE="RedisClusterCache", CACHE_REDIS_CLUSTER=cluster.startup_nodes,
                   CACHE_KEY_PREFIX=prefix, **PATIENT)
    Builder(app).tenant("acme")
    return app


def stats(client, tenant="acme", tz=None):
    response = client.get(f"{STATS}?tenantId={tenant}" + (f"&tz={tz}" if tz else ""))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.headers["X-Cache"], response.get_json()


def _keys_per_node(cluster, prefix) -> list[list[str]]:
    return [sorted(k.decode() for k in node.client().scan_iter(match=prefix + "*", count=1000))
            for node in cluster.nodes]


def test_miss_then_hit_and_a_write_invalidates(app):
    client = app.test_client()
    first, counts = stats(client)
    assert (first, stats(client)[0]) == ("MISS", "HIT")
    soon = datetime.now(timezone.utc) + timedelta(minutes=5)
    Builder(app).appointments("acme", [(soon, "confirmed")])
    outcome, after = stats(client)
    assert outcome == "MISS"
    assert after["month"]["confirmed"] + after["nextMonth"]["confirmed"] == \
        counts["month"]["confirmed"] + counts["nextMonth"]["confirmed"] + 1
    assert stats(client)[0] == "HIT"


def test_a_hit_is_one_mget_to_one_node(app, cluster):
    client = app.test_client()
    stats(client)
    stats(client)  # the zone hint is known now, as on any worker that has served the tenant
    nodes = [node.client() for node in cluster.nodes]
    for node in nodes:
        node.config_resetstat()
    assert stats(client)[0] == "HIT"
    calls = [{name.removeprefix("cmdstat_"): stat["calls"] for name, stat in node.info("commandstats").items()
              if not name.startswith(("cmdstat_config", "cmdstat_info"))} for node in nodes]
    assert sorted(calls, key=len) == [{}, {}, {"mget": 1}]


def test_each_tenant_lives_on_one_node_and_tenants_spread_over_several(app, cluster, prefix):
    build = Builder(app)
    tenants = [build.tenant(f"clinic-{n}") for n in range(24)]
    client = app.test_client()
    for tenant in tenants:
        assert stats(client, tenant)[0] == "MISS"
    per_node = _keys_per_node(cluster, prefix)
    holding = [keys for keys in per_node if any(":stats:" in k for k in keys)]
    assert len(holding) >= 2, per_node
    for tenant in tenants:
        tagged = [n for n, keys in enumerate(per_node) if any(f"{{{tenant}}}" in k for k in keys)]
        assert len(tagged) == 1, (tenant, per_node)  # record, generation and entry: one slot
    with app.app_context():
        assert cache.cache.size() == sum(map(len, per_node))


def test_a_cold_stampede_computes_once(app):
    computations: list[str] = []

    def slow(conn, cursor, statement, *args):
        if "FILTER" in statement:
            computations.append(statement)
            time.sleep(0.3)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", slow)
    stats(app.test_client())  # the tenant is known; the stampede is on a zone nobody asked for
    before = metrics.cache_summary(None)["computations"]
    barrier = threading.Barrier(30)
    outcomes: list[str] = []

    def poll():
        client = app.test_client()
        barrier.wait()
        outcomes.append(stats(client, tz="Asia/Tokyo")[0])

    threads = [threading.Thread(target=poll) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert metrics.cache_summary(None)["computations"] - before == 1
    assert len(computations) == 2  # the warm-up's and the stampede's
    assert sorted(outcomes) == ["HIT"] * 29 + ["MISS"]


def test_a_lock_is_held_once_across_the_cluster(app):
    with app.app_context():
        backend = cache.cache
        with backend.lock("lock:stats:{acme}:UTC:2026-01-01", timeout=5, wait=0) as first:
            with backend.lock("lock:stats:{acme}:UTC:2026-01-01", timeout=5, wait=0) as second:
                assert (first, second) == (True, False)
        with backend.lock("lock:stats:{acme}:UTC:2026-01-01", timeout=5, wait=0) as again:
            assert again


def test_cache_commands_visit_every_node(app, cluster, prefix):
    build = Builder(app)
    for tenant in ("rival", "clinic-a", "clinic-b", "clinic-c"):
        build.tenant(tenant)
    client = app.test_client()
    for tenant in ("acme", "rival", "clinic-a", "clinic-b", "clinic-c"):
        stats(client, tenant)
    stats(client, "acme", tz="Asia/Tokyo")
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["cache", "keys", "--tenant", "acme"])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.stdout.splitlines() if line]
    assert sorted(line.split("\t")[1] for line in lines) == ["America/Recife", "Asia/Tokyo"]
    assert all(line.startswith("acme\t") and line.endswith("current") for line in lines)

    everything = runner.invoke(args=["cache", "keys"])
    assert len(everything.stdout.splitlines()) == 6  # 5 tenants, acme in two zones, wherever they live

    shown = runner.invoke(args=["cache", "show", "acme"])
    assert shown.exit_code == 0 and shown.stdout.startswith(f"key: {prefix}stats:{{acme}}:America/Recife:")

    cleared = runner.invoke(args=["cache", "clear", "--tenant", "acme"])
    assert cleared.stdout.startswith("removed 2 entries of acme")
    assert runner.invoke(args=["cache", "keys", "--tenant", "acme"]).stdout == ""
    assert stats(client, "rival")[0] == "HIT"
    cleared = runner.invoke(args=["cache", "clear"])
    assert cleared.stdout.startswith("removed 4 entries")
    assert not any(":stats:" in key for keys in _keys_per_node(cluster, prefix) for key in keys)


def test_raw_sql_through_the_session_advances_the_tenants_it_changed_in_every_slot(app):
    """Its tenants cannot be told from the text: every tenant's version is read in the
    transaction, and those that moved advance, wherever their slot lives."""
    build = Builder(app)
    tenants = ["acme"] + [build.tenant(f"clinic-{n}") for n in range(8)]
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    for tenant in tenants[1:]:
        build.appointments(tenant, [(soon, "pending")])
    client = app.test_client()
    for tenant in tenants:
        stats(client, tenant)
    assert {stats(client, tenant)[0] for tenant in tenants} == {"HIT"}
    with app.app_context():
        db.session.execute(text("UPDATE appointments SET status = 'confirmed' WHERE status = 'pending'"))
        db.session.commit()
    assert stats(client, "acme")[0] == "HIT"  # it had none: unchanged
    assert {stats(client, tenant)[0] for tenant in tenants[1:]} == {"MISS"}


def test_an_unreachable_cluster_is_bypassed_and_the_app_still_starts(make_app):
    app = make_app(CACHE_TYPE="RedisClusterCache", CACHE_REDIS_CLUSTER=f"127.0.0.1:{free_port()}",
                   CACHE_REDIS_SOCKET_TIMEOUT=0.2)
    Builder(app).tenant("acme")
    client = app.test_client()
    assert [stats(client)[0] for _ in range(3)] == ["BYPASS"] * 3
    listed = app.test_cli_runner().invoke(args=["cache", "keys"])
    assert listed.exit_code == 1 and "cache unavailable" in listed.output


def test_stream_places_keep_their_rules_on_a_cluster(app):
    from tests.test_stream_caps import check_places

    check_places(app)


def test_the_changes_feed_keeps_its_rules_on_a_cluster(app):
    from tests.test_stream_watch import check_feed

    check_feed(app)
