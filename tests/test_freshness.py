"""Every committed change reaches every worker within 2 s, whoever wrote it and whatever failed
in between: a real gunicorn (3 workers, PostgreSQL, a Redis of the test's own), real failures
(psql-style writes, a killed process, a stopped Redis, a lost COMMIT acknowledgement, killed
workers), and every poll judged against writes that had returned before it was sent.

A verdict: every poll sent 2 s or more after the write returned (or after the failure healed)
shows the write; polls in between may show either. The time to the first poll showing it is
recorded too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from alignwork.services.changes.election import LEASE_KEY, holder_pid
from tests.background import Running
from tests.conftest import PG_URL, postgres_schema, require_postgres, require_redis
from tests.redis_servers import RedisServer
from tests.tcp_proxy import Proxy
from tests.test_gunicorn import ROOT, Server, _no_server_outlives_its_test, _running, zone_far_from_midnight  # noqa: F401

BOUND = 2.0  # seconds from a write (or a healed failure) to every poll showing it


@dataclass(frozen=True)
class Poll:
    sent: float
    status: int
    outcome: str | None  # X-Cache
    today: dict | None


class Polling(Running):
    """Dashboards polling from threads, each poll on a new connection (so the workers take
    turns), until the block ends."""

    def __init__(self, server: Server, token: str | None = None, threads: int = 4):
        self.server, self.token = server, token or server.token
        self.polls: list[Poll] = []
        super().__init__(*[self._run] * threads)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                status, outcome, body = self.server.request("GET", "/api/v1/appointments/mega-stats",
                                                            token=self.token)
            except OSError:
                continue
            today = json.loads(body)["today"] if status == 200 else None
            self.polls.append(Poll(sent, status, outcome, today))
            time.sleep(0.02)

    def until_shown(self, since: float, wanted, timeout: float = 8.0, cached: bool = False) -> float:
        """Wait until polls have run past ``since + BOUND`` (and ``wanted`` was seen); returns
        the seconds from ``since`` to the first poll showing ``wanted``. ``cached``: a HIT must
        show it within the bound too (answers from the database alone would prove nothing about
        the cache)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < max(since + BOUND + 1.0, 0) or not self.first(since, wanted):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        first = self.first(since, wanted)
        late = [p for p in self.polls if p.sent >= since + BOUND]
        assert late, "no poll was sent after the bound"
        wrong = [p for p in late if not wanted(p)]
        assert not wrong, f"{len(wrong)} of {len(late)} polls after {BOUND} s did not show the write: {wrong[:3]}"
        if cached:
            hit = self.first(since, lambda p: p.outcome == "HIT" and wanted(p))
            assert hit is not None and hit - since < BOUND, "no HIT showed the write within the bound"
        return first - since

    def first(self, since: float, wanted) -> float | None:
        return next((p.sent for p in self.polls if p.sent >= since and wanted(p)), None)


def counts(confirmed: int, pending: int = 0):
    return lambda poll: poll.status == 200 and poll.today == {"confirmed": confirmed, "pending": pending}


def refused(poll: Poll) -> bool:
    return poll.status == 401


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """gunicorn -c gunicorn.conf.py with 3 workers on PostgreSQL (a schema of its own) and a
    Redis of its own, shared by this module's tests: each test has a tenant of its own."""
    require_postgres()
    require_redis()
    tmp_path = tmp_path_factory.mktemp("freshness")
    redis_server = RedisServer(tmp_path).start()
    with postgres_schema() as schema:
        server = Server(tmp_path, workers=3, cache_env={
            "ALIGNWORK_SQLALCHEMY_DATABASE_URI": _schema_url(schema),
            "ALIGNWORK_CACHE_TYPE": "RedisCache", "ALIGNWORK_CACHE_REDIS_URL": redis_server.url,
        })
        _running.remove(server)  # stopped at the end of the module, not after the first test
        try:
            yield server, redis_server, schema
        finally:
            server.stop()
            redis_server.stop()


@dataclass
class Deployment:
    server: Server
    redis: RedisServer
    schema: str
    tenant: str
    token: str
    patient: int


def new_tenant(schema: str, server: Server) -> tuple[str, int, str]:
    """A tenant and a patient made with psql, as another service would, and the tenant's token."""
    tenant = "t" + uuid.uuid4().hex[:10]
    psql(schema, "INSERT INTO tenants (id, name, timezone, created_at) VALUES (%(t)s, %(t)s, %(z)s, now())",
         t=tenant, z=zone_far_from_midnight())
    psql(schema, "INSERT INTO patients (tenant_id, name, created_at) VALUES (%(t)s, 'Ana', now())", t=tenant)
    with psycopg.connect(PG_URL.replace("+psycopg", ""), options=f"-csearch_path={schema}") as conn:
        patient = conn.execute("SELECT id FROM patients WHERE tenant_id = %s", (tenant,)).fetchone()[0]
    return tenant, patient, server.sign(tenant)


@pytest.fixture
def deployment(stack) -> Deployment:
    server, redis_server, schema = stack
    tenant, patient, token = new_tenant(schema, server)
    return Deployment(server, redis_server, schema, tenant, token, patient)


def _schema_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def psql(schema: str, statement: str, **params) -> None:
    """A statement from outside the app, committed, as psql would send it."""
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True,
                         options=f"-csearch_path={schema}") as conn:
        conn.execute(statement, params)


def soon() -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=5)


def run_python(server: Server, code: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """A process of the app's own (another service, a script): same settings as the server."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**server.env, **(extra_env or {})},
                          capture_output=True, text=True, timeout=60)


BOOK = """
from datetime import datetime, timedelta, timezone
from alignwork import create_app
from alignwork.services import appointments
app = create_app()
with app.app_context():
    appointments.create_appointment({tenant!r}, {patient}, datetime.now(timezone.utc) + timedelta(minutes=5),
                                    30, "confirmed")
print("committed")
"""

INSERT = ("INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, created_at, "
          "updated_at, version) VALUES (%(t)s, %(p)s, %(s)s, 30, 'confirmed', now(), now(), 1)")


def book(d: Deployment, code: str = BOOK, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_python(d.server, code.format(tenant=d.tenant, patient=d.patient), env)


def test_psql_writes_reach_every_worker_within_the_bound(deployment):
    d = deployment
    steps = [
        (INSERT, counts(1)),
        ("UPDATE appointments SET status = 'pending' WHERE tenant_id = %(t)s", counts(0, 1)),
        ("DELETE FROM appointments WHERE tenant_id = %(t)s", counts(0, 0)),
        # A direct edit of the rollup (its rows stay, at n = 0): the counts are what it says.
        ("UPDATE appointment_counts SET n = 7 WHERE tenant_id = %(t)s AND status = 'pending'", counts(0, 7)),
    ]
    latencies = []
    with Polling(d.server, d.token) as polling:
        time.sleep(0.5)
        for statement, wanted in steps:
            psql(d.schema, statement, t=d.tenant, p=d.patient, s=soon())
            latencies.append(polling.until_shown(time.monotonic(), wanted))
    assert max(latencies) < BOUND, latencies
    served = set(re.findall(r"<(\d+)> \"GET /api/v1/appointments/mega-stats", d.server.log.read_text()))
    assert len(served) >= 3  # (over the module's log: every worker answered polls)


def test_a_process_killed_between_its_commit_and_its_invalidation(deployment):
    """A session listener inserted ahead of the app's exits the process right after the commit."""
    d = deployment
    die_after_commit = BOOK.replace("app = create_app()", """app = create_app()
import os
from sqlalchemy import event
from flask_sqlalchemy.session import Session
event.listen(Session, "after_commit", lambda session: os._exit(9), insert=True)""")
    with Polling(d.server, d.token) as polling:
        time.sleep(0.3)
        result = book(d, die_after_commit)
        assert result.returncode == 9, result.stderr
        polling.until_shown(time.monotonic(), counts(1))


def test_a_write_by_a_process_that_exits_while_redis_is_stopped(deployment):
    d = deployment
    with Polling(d.server, d.token) as polling:
        time.sleep(0.3)
        d.redis.pause()
        try:
            result = book(d)
            assert "committed" in result.stdout, result.stderr
        finally:
            d.redis.resume()
        polling.until_shown(time.monotonic(), counts(1), cached=True)  # counted from SIGCONT


def _revoke_with_the_command(d: Deployment) -> None:
    subprocess.run([sys.executable, "-m", "flask", "tenants", "revoke-tokens", d.tenant], cwd=ROOT,
                   env=d.server.env, check=True, capture_output=True, timeout=60)


def _revoke_with_psql(d: Deployment) -> None:
    psql(d.schema, "UPDATE tenants SET tokens_revoked_at = now() WHERE id = %(t)s", t=d.tenant)


@pytest.mark.parametrize("revoke", [_revoke_with_the_command, _revoke_with_psql], ids=["command", "psql"])
def test_a_revocation_made_while_redis_is_stopped(deployment, revoke):
    """(The command's own cache writes, sent to the stopped Redis, may still be read by it when
    it resumes; psql's never are, so that case stands on the listener alone.)"""
    d = deployment
    with Polling(d.server, d.token) as polling:
        time.sleep(0.3)
        d.redis.pause()
        try:
            revoke(d)
        finally:
            d.redis.resume()
        polling.until_shown(time.monotonic(), refused)


def test_a_commit_whose_acknowledgement_is_lost(deployment):
    d = deployment
    proxy = Proxy(("127.0.0.1", int(re.search(r":(\d+)/", PG_URL)[1])))
    through_proxy = _schema_url(d.schema).replace(re.search(r"@([^/]+)/", PG_URL)[1], f"127.0.0.1:{proxy.port}")
    cut = proxy.lose_reply_after(b"COMMIT")
    try:
        with Polling(d.server, d.token) as polling:
            time.sleep(0.3)
            result = book(d, env={"ALIGNWORK_SQLALCHEMY_DATABASE_URI": through_proxy})
            assert cut.is_set() and "committed" not in result.stdout, result.stdout + result.stderr
            polling.until_shown(time.monotonic(), counts(1))  # committed all the same
    finally:
        proxy.stop()


def _listener_pid(redis_server: RedisServer) -> int | None:
    """The process whose listener leads: it holds the lease in the deployment's Redis."""
    holder = redis_server.client().get("alignwork:" + LEASE_KEY)
    return holder_pid(holder.decode()) if holder else None


def test_the_listener_killed_during_writes_comes_back_by_itself(deployment):
    d = deployment
    with Polling(d.server, d.token) as polling:
        time.sleep(0.5)
        leader = _listener_pid(d.redis)
        assert leader is not None
        os.kill(leader, signal.SIGKILL)
        psql(d.schema, INSERT, t=d.tenant, p=d.patient, s=soon())
        polling.until_shown(time.monotonic(), counts(1))
    successor = _listener_pid(d.redis)
    assert successor is not None and successor != leader


def test_sqlite_and_simplecache_under_make_runs_server(tmp_path):
    """One worker with threads on SQLite and SimpleCache, as ``make run`` serves: a write by
    another process reaches it through the worker's own listener."""
    server = Server(tmp_path, workers=None, cache_env={"ALIGNWORK_CACHE_TYPE": "SimpleCache",
                                                       "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "4"})
    patient = json.loads(server.request("POST", "/api/v1/patients", {"name": "Ana"}, server.token)[2])["id"]
    with Polling(server, threads=2) as polling:
        time.sleep(0.3)
        result = run_python(server, BOOK.format(tenant="acme", patient=patient))
        assert "committed" in result.stdout, result.stderr
        polling.until_shown(time.monotonic(), counts(1))
    server.stop()
