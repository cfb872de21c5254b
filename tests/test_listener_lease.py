"""The listener's lease, with real processes and signals: a leader frozen with SIGSTOP (a
gunicorn worker, and separately ``flask stats listen``) is replaced within the bound, and once
thawed writes nothing stale; two deployments on one database, each with its own Redis, each get
every change. Every poll is judged against writes that had returned before it was sent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from alignwork.services.changes.election import LEASE_KEY, holder_pid
from tests.conftest import postgres_schema, require_postgres, require_redis
from tests.ports import free_port
from tests.redis_servers import RedisServer
from tests.test_freshness import BOUND, INSERT, Polling, _schema_url, counts, new_tenant, psql, soon
from tests.test_gunicorn import GUNICORN, ROOT, Server, _running, _no_server_outlives_its_test  # noqa: F401


def _leader(redis_server: RedisServer) -> int | None:
    holder = redis_server.client().get("alignwork:" + LEASE_KEY)
    return holder_pid(holder.decode()) if holder else None


def _takeover_seconds(redis_server: RedisServer, frozen: int) -> float:
    started = time.monotonic()
    while (_leader(redis_server) in (frozen, None)) and time.monotonic() - started < 10:
        time.sleep(0.01)
    return time.monotonic() - started


def _frozen_leader_is_replaced(server: Server, redis_server: RedisServer, schema: str) -> float:
    """Freeze the leader, write with psql twice while it is frozen, thaw it: every poll after the
    bound shows each write, and every poll after the thaw shows the last one."""
    tenant, patient, token = new_tenant(schema, server)
    with Polling(server, token) as polling:
        time.sleep(1.0)
        leader = _leader(redis_server)
        assert leader is not None
        os.kill(leader, signal.SIGSTOP)
        try:
            psql(schema, INSERT, t=tenant, p=patient, s=soon())
            frozen_at = time.monotonic()
            takeover = _takeover_seconds(redis_server, leader)
            polling.until_shown(frozen_at, counts(1))
            psql(schema, "UPDATE appointments SET status = 'pending' WHERE tenant_id = %(t)s", t=tenant)
            polling.until_shown(time.monotonic(), counts(0, 1))
        finally:
            os.kill(leader, signal.SIGCONT)
        thawed = time.monotonic()
        time.sleep(2.5)  # the thawed leader finishes whatever tick it was frozen in, and more
    after = [p for p in polling.polls if p.sent >= thawed]
    assert after and all(counts(0, 1)(p) for p in after), [p for p in after if not counts(0, 1)(p)][:3]
    assert _leader(redis_server) != leader  # it found the lease taken and did not take it back
    return takeover


@pytest.fixture
def deployment(tmp_path):
    require_postgres()
    require_redis()
    redis_server = RedisServer(tmp_path).start()
    with postgres_schema() as schema:
        try:
            yield tmp_path, redis_server, schema
        finally:
            redis_server.stop()


def test_a_frozen_leading_worker_is_replaced_within_the_bound(deployment):
    tmp_path, redis_server, schema = deployment
    server = Server(tmp_path, workers=3, cache_env={
        "ALIGNWORK_SQLALCHEMY_DATABASE_URI": _schema_url(schema),
        "ALIGNWORK_CACHE_TYPE": "RedisCache", "ALIGNWORK_CACHE_REDIS_URL": redis_server.url,
    })
    takeover = _frozen_leader_is_replaced(server, redis_server, schema)
    server.stop()
    assert takeover < BOUND
    print(f"worker leader replaced {takeover:.2f} s after SIGSTOP")


def test_a_frozen_flask_stats_listen_is_replaced_within_the_bound(deployment):
    tmp_path, redis_server, schema = deployment
    server = Server(tmp_path, workers=2, cache_env={
        "ALIGNWORK_SQLALCHEMY_DATABASE_URI": _schema_url(schema), "ALIGNWORK_CHANGE_LISTENER": "off",
        "ALIGNWORK_CACHE_TYPE": "RedisCache", "ALIGNWORK_CACHE_REDIS_URL": redis_server.url,
    })
    listeners = [subprocess.Popen([sys.executable, "-m", "flask", "stats", "listen"], cwd=ROOT, env=server.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        deadline = time.monotonic() + 20
        while _leader(redis_server) not in {p.pid for p in listeners} and time.monotonic() < deadline:
            time.sleep(0.1)
        takeover = _frozen_leader_is_replaced(server, redis_server, schema)
        assert _leader(redis_server) in {p.pid for p in listeners}
    finally:
        for process in listeners:
            process.terminate()
            process.wait(10)
        server.stop()
    assert takeover < BOUND
    print(f"flask stats listen leader replaced {takeover:.2f} s after SIGSTOP")


def test_two_deployments_on_one_database_each_get_every_change(deployment):
    """Staging and production on one database, each with its own Redis: a psql write shows on
    both (an election per database would serve one of them only)."""
    tmp_path, redis_server, schema = deployment
    (tmp_path / "other").mkdir()
    other_redis = RedisServer(tmp_path / "other").start()
    env = {"ALIGNWORK_SQLALCHEMY_DATABASE_URI": _schema_url(schema), "ALIGNWORK_CACHE_TYPE": "RedisCache"}
    first = Server(tmp_path, workers=2, cache_env={**env, "ALIGNWORK_CACHE_REDIS_URL": redis_server.url})
    second = _second_deployment(tmp_path / "other", first, {**env, "ALIGNWORK_CACHE_REDIS_URL": other_redis.url})
    try:
        tenant, patient, token = new_tenant(schema, first)
        with Polling(first, token) as on_first, Polling(second, token) as on_second:
            time.sleep(1.0)
            psql(schema, INSERT, t=tenant, p=patient, s=soon())
            written = time.monotonic()
            latencies = [on_first.until_shown(written, counts(1), cached=True),
                         on_second.until_shown(written, counts(1), cached=True)]
        assert max(latencies) < BOUND, latencies
        assert _leader(redis_server) is not None and _leader(other_redis) is not None
    finally:
        second.stop()
        first.stop()
        other_redis.stop()


def _second_deployment(tmp_path, first: Server, cache_env: dict) -> Server:
    """Another gunicorn on the first one's database (already migrated, tenants made): the same
    settings, its own port, log, metrics and cache."""
    server = Server.__new__(Server)
    server.port = free_port()
    server.log = tmp_path / "gunicorn.log"
    server.env = {**first.env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), **cache_env}
    server.token, server.admin, server.patient = first.token, first.admin, None
    server.process = subprocess.Popen([str(GUNICORN), "-c", "gunicorn.conf.py", "-w", "2",
                                       "-b", f"127.0.0.1:{server.port}", "wsgi:app"], cwd=ROOT, env=server.env,
                                      stdout=server.log.open("w"), stderr=subprocess.STDOUT)
    _running.append(server)
    server._wait_ready(2)
    return server
