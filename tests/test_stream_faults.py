"""Live dashboards through real faults: after a worker SIGKILL, a reload (HUP), a Redis
failover, a PostgreSQL restart or a TCP cut (between the dashboards and gunicorn, or between
gunicorn and Redis), every stream's last event is what ``GET mega-stats`` answers, ETag and body,
within 2 s of recovery, and it counts every appointment whose write had returned: nothing is lost.

Each test runs a real gunicorn (the shipped config, gevent workers): SQLite with SimpleCache and
one worker where the fault applies to it (SIGKILL, HUP, the dashboards' connections cut), and
PostgreSQL with Redis and three workers. Three clinics have two dashboards each
(``tests/sse_client.py``: they reconnect as the dashboard does). Appointments are booked before,
during (where the fault lets a write succeed) and after the fault, through the API and as psql
would; recovery is the moment the fault is healed or the server serves again, and from then on
every stream is judged against a fresh ``GET mega-stats`` and the database's count, which must
hold every write that returned. No stream's count may ever go back either. The figures are
printed (``pytest -s``).

A dashboard waits the ``retry:`` it was sent before it reconnects, and that wait is part of the
2 s after a cut or a killed worker: the servers here send the shipped 1 to 2 s.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, postgres_schema, require_postgres
from tests.postgres_server import PostgresServer
from tests.redis_servers import MASTER_NAME, RedisServer, SentinelSetup, wait_for
from tests.sse_client import LiveStream
from tests.tcp_proxy import Proxy
from tests.test_gunicorn import Server, _no_server_outlives_its_test, _running  # noqa: F401 (a fixture)
from tests.test_stream import Stack, _start

pytestmark = pytest.mark.slow

BOUND = 2.0  # seconds from recovery to every stream showing what mega-stats answers
OUTAGE = 1.5  # how long a cut lasts (Sentinel's promotion and a worker's boot take their own time)
ENV = {"ALIGNWORK_STREAM_KEEPALIVE_SECONDS": "1"}
CLINICS, DASHBOARDS = 3, 2


@dataclass(frozen=True)
class Clinic:
    tenant: str
    token: str
    patient: int


class Judge:
    """The clinics of one test, their dashboards, every write and what came of it, and the
    verdict: each stream's last event is a fresh mega-stats answer that counts every
    appointment the database holds, and the database holds every write that returned."""

    def __init__(self, stack: Stack, port: int | None = None, dashboards: int = DASHBOARDS):
        self.stack, self.port = stack, port or stack.server.port
        self.clinics = [Clinic(*stack.tenant()) for _ in range(CLINICS)]
        self.streams: dict[Clinic, list[LiveStream]] = {clinic: [] for clinic in self.clinics}
        self.acknowledged: Counter = Counter()
        self.unknown: Counter = Counter()  # no answer: committed or not
        self.refused = 0
        self._writers: list[threading.Thread] = []
        if dashboards:
            self.connect(dashboards)

    def connect(self, dashboards: int) -> None:
        """Open ``dashboards`` more dashboards per clinic, and wait for their first events."""
        for clinic, streams in self.streams.items():
            streams += [LiveStream(self.port, clinic.token).start()
                        for _ in range(dashboards)]
        wait_for(lambda: all(s.last for s in self.all_streams()), 10, "not every stream sent its first event")

    def all_streams(self) -> list[LiveStream]:
        return [stream for streams in self.streams.values() for stream in streams]

    def book(self, clinic: Clinic) -> None:
        """Through the API: a 201 is acknowledged; a 503 or 4xx was refused whole."""
        soon = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.server.port, timeout=15)
        try:
            conn.request("POST", "/api/v1/appointments", body=json.dumps({
                "patientId": clinic.patient, "startsAt": soon, "durationMin": 30, "status": "confirmed"}),
                headers={"Authorization": f"Bearer {clinic.token}", "Content-Type": "application/json"})
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException):
            status = None
        finally:
            conn.close()
        if status == 201:
            self.acknowledged[clinic] += 1
        elif status is not None and (status == 503 or 400 <= status < 500):
            self.refused += 1
        else:
            self.unknown[clinic] += 1

    def insert(self, clinic: Clinic) -> None:
        """As psql would, on a connection of the test's own: the app never sees it."""
        self.stack.insert(clinic.tenant, clinic.patient)
        self.acknowledged[clinic] += 1

    def write(self, api: bool = True, psql: bool = True) -> None:
        """For every clinic: a booking through the API (straight to gunicorn), an insert as psql."""
        for clinic in self.clinics:
            if api:
                self.book(clinic)
            if psql:
                self.insert(clinic)

    def write_and_wait(self, what: str) -> float:
        """Bookings through the API, then, once every stream shows them, psql inserts: so the
        listener's path is judged on its own (a stream reading after an API booking would
        also show an insert committed just after it). The longer of the two waits."""
        self.write(psql=False)
        through_api = self.agreed(time.monotonic(), f"{what}, through the API")
        self.write(api=False)
        return max(through_api, self.agreed(time.monotonic(), f"{what}, as psql"))

    def write_meanwhile(self) -> None:
        """Writes in a thread, started during a fault; judged once they have returned."""
        writer = threading.Thread(target=self.write, daemon=True)
        writer.start()
        self._writers.append(writer)

    def writes(self) -> int:
        return sum(self.acknowledged.values())

    def count(self, clinic: Clinic) -> int:
        with self.stack.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM appointments WHERE tenant_id = :t AND "
                                        "status = 'confirmed'"), {"t": clinic.tenant}).scalar()

    def disagreements(self) -> list[str]:
        if any(writer.is_alive() for writer in self._writers):
            return ["writes still waiting for their answers"]
        found = []
        for clinic, streams in self.streams.items():
            try:
                etag, body = self.stack.stats(clinic.token)
            except OSError as exc:
                return [f"mega-stats not answered: {exc!r}"]
            held, acknowledged = self.count(clinic), self.acknowledged[clinic]
            if not acknowledged <= held <= acknowledged + self.unknown[clinic]:
                found.append(f"{clinic.tenant}: the database holds {held} of {acknowledged} acknowledged")
            if json.loads(body)["today"]["confirmed"] != held:
                found.append(f"{clinic.tenant}: mega-stats says {body.strip()}, the database {held}")
            for number, stream in enumerate(streams):
                last = stream.last
                if (last.id, last.data) != (etag, body):
                    found.append(f"{clinic.tenant} stream {number}: last event {last.id} "
                                 f"{last.data.strip()}, mega-stats {etag} {body.strip()}")
        return found

    def agreed(self, since: float, what: str) -> float:
        """Seconds from ``since`` until every stream agrees with mega-stats and the database;
        fails past the bound, saying how far it was."""
        deadline = since + BOUND + 3
        while (found := self.disagreements()) and time.monotonic() < deadline:
            time.sleep(0.05)
        took = time.monotonic() - since
        assert not found, f"{what}: no agreement {took:.1f} s on: {found}"
        assert took < BOUND, f"{what}: every stream agreed only {took:.2f} s on (bound {BOUND} s)"
        return took

    def never_went_back(self) -> None:
        """Appointments are only added: a stream showing fewer than it showed before was sent
        stale numbers."""
        for stream in self.all_streams():
            shown = [json.loads(event.data)["today"]["confirmed"] for event in stream.events]
            assert shown == sorted(shown), f"a stream went back: {shown}"

    def reconnections(self) -> int:
        return sum(len(stream.attempts) - 1 for stream in self.all_streams())

    def close(self) -> None:
        for stream in self.all_streams():
            stream.stop()


@pytest.fixture
def judge_of():
    made: list[Judge] = []

    def judge(stack: Stack, port: int | None = None, dashboards: int = DASHBOARDS) -> Judge:
        made.append(Judge(stack, port, dashboards))
        return made[-1]

    yield judge
    for judge in made:
        judge.close()


def report(name: str, recovered_in: float | None, agreed: float, after: float, judge: Judge,
           note: str = "") -> None:
    healed = f"serving again {recovered_in:.2f} s after the fault; " if recovered_in is not None else ""
    print(f"\n{name}: {healed}every stream equal to mega-stats {agreed:.2f} s after recovery, "
          f"{after:.2f} s after the writes that followed; {judge.writes()} writes acknowledged, "
          f"{sum(judge.unknown.values())} unanswered, {judge.refused} refused, none lost; "
          f"{judge.reconnections()} reconnections{note}")


# -- the servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_stack(tmp_path_factory):
    stack = _start(tmp_path_factory.mktemp("sqlite"), "sqlite-simple", workers=1, env=ENV)
    _running.remove(stack.server)  # shared by the module's tests
    yield stack
    stack.server.stop()
    stack.engine.dispose()


@dataclass
class Deployment:
    """Three workers on a PostgreSQL and a Redis of the module's own, which the tests stop and
    cut off: the Redis is reached through a proxy."""

    stack: Stack
    postgres: PostgresServer
    redis: Proxy


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("postgresql-redis")
    postgres = PostgresServer()
    try:
        postgres.start()
        redis_server = RedisServer(tmp_path).start()
        proxy = Proxy(("127.0.0.1", redis_server.port))
        try:
            server = Server(tmp_path, workers=3, cache_env={
                "ALIGNWORK_SQLALCHEMY_DATABASE_URI": postgres.url, "ALIGNWORK_CACHE_TYPE": "RedisCache",
                "ALIGNWORK_CACHE_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0", **ENV})
            _running.remove(server)  # shared by the module's tests
            stack = Stack(server, postgres.url)
            try:
                yield Deployment(stack, postgres, proxy)
            finally:
                server.stop()
                stack.engine.dispose()
        finally:
            proxy.stop()
            redis_server.stop()
    finally:
        postgres.remove()


@pytest.fixture(params=["sqlite-simple", "postgresql-redis"])
def stack(request) -> Stack:
    if request.param == "sqlite-simple":
        return request.getfixturevalue("sqlite_stack")
    return request.getfixturevalue("deployment").stack


# -- gunicorn's workers ---------------------------------------------------------------------------


def workers(server: Server) -> set[int]:
    """The master's children that are workers (a reload also runs the settings check)."""
    master = server.process.pid
    with open(f"/proc/{master}/task/{master}/children") as listed:
        children = [int(pid) for pid in listed.read().split()]
    with open(f"/proc/{master}/cmdline", "rb") as own:
        command = own.read()
    found = set()
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as theirs:
                if theirs.read() == command:
                    found.add(pid)
        except OSError:
            pass
    return found


def workers_holding(server: Server, streams: list[LiveStream]) -> set[int]:
    """The workers whose sockets carry these streams: the server side of each client port,
    found in /proc/net/tcp, and the worker holding that socket."""
    ports = {stream.local_port for stream in streams} - {None}
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.split(":")[1], 16) == server.port and int(remote.split(":")[1], 16) in ports:
                inodes.add(f"socket:[{inode}]")
    holding = set()
    for pid in workers(server):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                holding.add(pid)
        except OSError:
            pass
    return holding


def serving_again(server: Server, count: int, gone: set[int]) -> float:
    """When every worker is a new one (none of ``gone``), ``count`` of them, and each has
    answered a health check: the moment the last of them answered."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = workers(server)
        if len(now) == count and now.isdisjoint(gone):
            try:
                server.concurrently(8, lambda: server.request("GET", "/healthz"))
            except OSError:
                pass
            if now <= {int(pid) for pid in server.worker_pids(server.log.read_text(), "/healthz")}:
                return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"gunicorn did not serve with {count} new workers:\n{server.log.read_text()[-3000:]}")


def worker_count(stack: Stack) -> int:
    return len(workers(stack.server))


# -- the faults -----------------------------------------------------------------------------------


def test_a_worker_killed_under_its_streams(stack, judge_of, request):
    """SIGKILL: the streams it held are cut without a word; gunicorn's master forks a new one,
    and the dashboards come back to it (or to the workers still serving)."""
    count = worker_count(stack)
    judge = judge_of(stack)
    judge.write_and_wait("before the kill")
    holding = workers_holding(stack.server, judge.all_streams())
    assert holding, "no worker holds the streams"
    logged = len(stack.server.log.read_text())
    killed = time.monotonic()
    for pid in holding:
        os.kill(pid, signal.SIGKILL)
    judge.write_meanwhile()  # psql at once; the API waits for (or goes to) a serving worker
    recovered = serving_again(stack.server, count, holding)
    agreed = judge.agreed(recovered, "after the kill")
    after = judge.write_and_wait("writes after the kill")
    judge.never_went_back()
    assert "Traceback" not in stack.server.log.read_text()[logged:]
    report(f"SIGKILL [{request.node.callspec.id}]", recovered - killed, agreed, after, judge,
           f"; killed {len(holding)} of {count} workers")


def test_a_reload(stack, judge_of, request):
    """HUP: new workers are forked, the old ones end their streams (``: end shutdown``, a short
    ``retry:``) and exit; the dashboards come back to the new ones."""
    count = worker_count(stack)
    judge = judge_of(stack)
    judge.write_and_wait("before the reload")
    old = workers(stack.server)
    logged = len(stack.server.log.read_text())
    reloading = time.monotonic()
    stack.server.process.send_signal(signal.SIGHUP)
    judge.write_meanwhile()
    recovered = serving_again(stack.server, count, old)
    agreed = judge.agreed(recovered, "after the reload")
    after = judge.write_and_wait("writes after the reload")
    judge.never_went_back()
    assert "Traceback" not in stack.server.log.read_text()[logged:]
    report(f"HUP [{request.node.callspec.id}]", recovered - reloading, agreed, after, judge)


def test_the_dashboards_connections_cut(stack, judge_of, request):
    """Every connection between the dashboards and gunicorn cut, and none possible for a while:
    the streams end mid-response; writes go on, straight to the server."""
    proxy = Proxy(("127.0.0.1", stack.server.port))
    try:
        judge = judge_of(stack, proxy.port)
        judge.write_and_wait("before the cut")
        proxy.cut()
        judge.write()
        time.sleep(OUTAGE)
        proxy.heal()
        recovered = time.monotonic()
        agreed = judge.agreed(recovered, "after the cut")
        after = judge.write_and_wait("writes after the cut")
        judge.never_went_back()
        report(f"TCP cut, dashboards to gunicorn [{request.node.callspec.id}]", None, agreed, after, judge)
    finally:
        proxy.stop()


def test_redis_cut_off_from_gunicorn(deployment, judge_of):
    """Every connection between gunicorn and Redis cut, and none possible for a while: polls and
    streams are answered from the database meanwhile, writes go on."""
    stack = deployment.stack
    judge = judge_of(stack)
    judge.write_and_wait("before the cut")
    deployment.redis.cut()
    judge.write()
    time.sleep(OUTAGE)
    deployment.redis.heal()
    recovered = time.monotonic()
    agreed = judge.agreed(recovered, "after Redis came back")
    after = judge.write_and_wait("writes after Redis came back")
    judge.never_went_back()
    report("TCP cut, gunicorn to Redis", None, agreed, after, judge)


def test_a_postgresql_restart(deployment, judge_of):
    """PostgreSQL stopped (immediate: every connection dropped) and started again: the streams
    stay open throughout, as no database session is held between reads, and the API refuses
    writes meanwhile (503, whole). The writes before the stop have reached the streams."""
    stack, postgres = deployment.stack, deployment.postgres
    judge = judge_of(stack)
    judge.write_and_wait("before the restart")
    stopping = time.monotonic()
    postgres.stop()
    for clinic in judge.clinics:
        judge.book(clinic)
    assert judge.refused == CLINICS
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopping)))
    postgres.start()
    recovered = time.monotonic()
    stack.engine.dispose()  # its connections died with the server
    agreed = judge.agreed(recovered, "after the restart")
    after = judge.write_and_wait("writes after the restart")
    judge.never_went_back()
    assert judge.reconnections() == 0, "a stream was cut by the database's restart"
    report("PostgreSQL restart", recovered - stopping, agreed, after, judge, " (serving again = started)")


def test_a_dashboard_that_connects_while_postgresql_is_down(deployment, judge_of):
    """Dashboards that connect while the database is down (their connection was cut, a browser
    was opened), after a write they never saw: an acknowledged booking retired the entry in the
    cache, and no stream or poll read the new numbers before the database stopped. Their first
    event is the STALE entry, the last numbers held; once the database is back every stream
    must show every write."""
    stack, postgres = deployment.stack, deployment.postgres
    judge = judge_of(stack, dashboards=0)
    for clinic in judge.clinics:
        stack.stats(clinic.token)  # numbers in the cache, which the booking retires
    judge.write(psql=False)
    stopping = time.monotonic()
    postgres.stop()
    judge.connect(DASHBOARDS)
    stale = [json.loads(s.last.data)["today"]["confirmed"] < judge.acknowledged[clinic]
             for clinic, streams in judge.streams.items() for s in streams]
    assert all(stale)  # the last numbers held: the booking is not in them
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopping)))
    postgres.start()
    recovered = time.monotonic()
    stack.engine.dispose()
    agreed = judge.agreed(recovered, "after the restart")
    after = judge.write_and_wait("writes after the restart")
    judge.never_went_back()
    report("PostgreSQL down while dashboards connect", recovered - stopping, agreed, after, judge,
           " (serving again = started)")


def test_a_redis_failover(tmp_path, judge_of):
    """Sentinel: the master killed, the replica promoted; writes go on meanwhile."""
    require_postgres()
    sentinels = SentinelSetup(tmp_path).start()  # promotes about 2 s after the master is gone
    try:
        with postgres_schema() as schema:
            server = Server(tmp_path, workers=3, cache_env={
                "ALIGNWORK_SQLALCHEMY_DATABASE_URI": f"{PG_URL}?options=-csearch_path%3D{schema}",
                "ALIGNWORK_CACHE_TYPE": "RedisSentinelCache",
                "ALIGNWORK_CACHE_REDIS_SENTINELS": json.dumps(sentinels.addresses),
                "ALIGNWORK_CACHE_REDIS_SENTINEL_MASTER": MASTER_NAME,
                "ALIGNWORK_CACHE_KEY_PREFIX": f"alignwork-faults-{uuid.uuid4().hex[:8]}:", **ENV})
            stack = Stack(server, PG_URL, {"options": f"-csearch_path={schema}"})
            try:
                judge = judge_of(stack)
                judge.write_and_wait("before the failover")
                old_master = sentinels.master.port
                killed = time.monotonic()
                sentinels.master.kill()
                judge.write_meanwhile()
                wait_for(lambda: sentinels.master_port() != old_master, 30,
                         "Sentinel did not promote the replica")
                recovered = time.monotonic()
                agreed = judge.agreed(recovered, "after the promotion")
                after = judge.write_and_wait("writes after the promotion")
                judge.never_went_back()
                report("Redis failover", recovered - killed, agreed, after, judge,
                       " (serving again = promoted)")
                judge.close()
                assert "Traceback" not in server.stop()
            finally:
                server.stop()
                stack.engine.dispose()
    finally:
        sentinels.stop()
