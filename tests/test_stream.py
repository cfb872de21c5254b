"""Live dashboards against a real gunicorn (the shipped config, gevent workers): the first event
and resuming, events after writes the app never sees (a separate connection, as psql), none for
another tenant's, the end on revocation, expiry and a stop, caps, tickets, and the 503 of a
worker class that cannot stream. On SQLite with SimpleCache (one worker, as ``make run``) and on
PostgreSQL with Redis (three workers, which learn of each other's changes through the cache)."""

from __future__ import annotations

import http.client
import json
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import redis
import sqlalchemy as sa

from tests.conftest import PG_URL, REDIS_URL, postgres_schema, require_postgres, require_redis
from tests.test_gunicorn import ROOT, Server, _no_server_outlives_its_test, _running, zone_far_from_midnight  # noqa: F401

STREAM = "/api/v1/appointments/mega-stats/stream"
STATS = "/api/v1/appointments/mega-stats"
FAST = {"ALIGNWORK_STREAM_KEEPALIVE_SECONDS": "1", "ALIGNWORK_STREAM_RETRY_SECONDS": "1"}


class Events:
    """One stream, read in a thread: its events and comments as they come, and when it ended."""

    def __init__(self, port: int, path: str = STREAM, token: str | None = None, headers: dict | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        self.conn.request("GET", path, headers=sent)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.items: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read()

    def _read(self) -> None:
        fields: dict = {}
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                line = line.decode().rstrip("\n")
                if line == "":
                    if fields:
                        self.items.put((time.monotonic(), fields))
                    fields = {}
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data" and "data" in fields:  # lines of one data field, joined
                    value = fields["data"] + "\n" + value
                fields[name or "comment"] = value
        except (OSError, http.client.HTTPException, ValueError, AttributeError):  # closed under us
            pass
        self.ended.set()

    def next(self, kind: str = "event", timeout: float = 5.0) -> tuple[float, dict] | None:
        """The next item with a ``kind`` field (event, comment, retry), or None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                at, fields = self.items.get(timeout=left)
            except queue.Empty:
                return None
            if kind in fields:
                return at, fields
        return None

    def close(self) -> None:
        self.conn.close()


class Stack:
    """A gunicorn server and a way to write behind its back (a connection of our own)."""

    def __init__(self, server: Server, url: str, connect_args: dict | None = None):
        self.server = server
        self.engine = sa.create_engine(url, connect_args=connect_args or {})

    def execute(self, statement: str, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(statement), params)

    def tenant(self) -> tuple[str, str, int]:
        tenant = "t" + uuid.uuid4().hex[:10]
        now = datetime.now(timezone.utc)
        self.execute("INSERT INTO tenants (id, name, timezone, created_at) VALUES (:t, :t, :z, :now)",
                     t=tenant, z=zone_far_from_midnight(), now=now)
        self.execute("INSERT INTO patients (tenant_id, name, created_at) VALUES (:t, 'Ana', :now)", t=tenant, now=now)
        with self.engine.connect() as conn:
            patient = conn.execute(sa.text("SELECT id FROM patients WHERE tenant_id = :t"), {"t": tenant}).scalar()
        return tenant, self.server.sign(tenant), patient

    def insert(self, tenant: str, patient: int) -> float:
        """Book an appointment as psql would; when it committed (monotonic)."""
        now = datetime.now(timezone.utc)
        self.execute("INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, "
                     "created_at, updated_at, version) VALUES (:t, :p, :s, 30, 'confirmed', :now, :now, 1)",
                     t=tenant, p=patient, s=now + timedelta(minutes=5), now=now)
        return time.monotonic()

    def stats(self, token: str):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        conn.request("GET", STATS, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.getheader("ETag"), response.read().decode()

    def open(self, token: str | None = None, query: str = "", **kwargs) -> Events:
        return Events(self.server.port, STREAM + query, token, **kwargs)


def _start(tmp_path, kind: str, workers: int | None, env: dict | None = None) -> Stack:
    env = {**FAST, **(env or {})}
    if kind == "sqlite-simple":
        server = Server(tmp_path, workers=workers, cache_env={"ALIGNWORK_CACHE_TYPE": "SimpleCache", **env})
        return Stack(server, f"sqlite:///{tmp_path}/gunicorn.sqlite")
    require_postgres()
    require_redis()
    schema = _schemas.enter(tmp_path)
    prefix = f"alignwork-stream-{uuid.uuid4().hex[:8]}:"
    server = Server(tmp_path, workers=workers, cache_env={
        "ALIGNWORK_SQLALCHEMY_DATABASE_URI": f"{PG_URL}?options=-csearch_path%3D{schema}",
        "ALIGNWORK_CACHE_TYPE": "RedisCache", "ALIGNWORK_CACHE_REDIS_URL": REDIS_URL,
        "ALIGNWORK_CACHE_KEY_PREFIX": prefix, **env})
    _schemas.prefixes.append(prefix)
    return Stack(server, PG_URL, {"options": f"-csearch_path={schema}"})


class _Schemas:
    """PostgreSQL schemas and Redis prefixes made by this module, dropped at its end."""

    def __init__(self):
        self.contexts, self.prefixes = [], []

    def enter(self, _tmp_path) -> str:
        context = postgres_schema()
        self.contexts.append(context)
        return context.__enter__()

    def close(self) -> None:
        while self.contexts:
            self.contexts.pop().__exit__(None, None, None)
        client = redis.Redis.from_url(REDIS_URL)
        for prefix in self.prefixes:
            for key in client.scan_iter(match=prefix + "*"):
                client.delete(key)
        self.prefixes.clear()


_schemas = _Schemas()


@pytest.fixture(scope="module", params=["sqlite-simple", "postgresql-redis"])
def stack(request, tmp_path_factory):
    kind = request.param
    stack = _start(tmp_path_factory.mktemp(kind), kind, workers=1 if kind == "sqlite-simple" else 3)
    _running.remove(stack.server)  # shared by the module's tests
    yield stack
    stack.server.stop()
    stack.engine.dispose()
    _schemas.close()


# -- the stream ----------------------------------------------------------------------------


def test_first_event_is_the_mega_stats_answer_and_last_event_id_skips_it(stack):
    tenant, token, patient = stack.tenant()
    etag, body = stack.stats(token)
    events = stack.open(token)
    assert events.status == 200
    assert events.response.getheader("Content-Type").startswith("text/event-stream")
    assert events.response.getheader("Cache-Control") == "no-store"
    assert events.response.getheader("X-Accel-Buffering") == "no"
    _, first = events.next()
    assert first == {"event": "stats", "id": etag, "data": body}
    assert events.next("comment", timeout=3)[1]["comment"].strip() == "keep-alive"
    events.close()

    for spelling in ("header", "query"):
        etag, body = stack.stats(token)
        bare = etag.removeprefix("W/").strip('"')
        resumed = (stack.open(token, headers={"Last-Event-ID": etag}) if spelling == "header"
                   else stack.open(token, query=f"?lastEventId={bare}"))
        retry = resumed.next("retry", timeout=3)
        assert retry is not None and 1000 <= int(retry[1]["retry"]) <= 2000  # 1 s plus jitter
        assert resumed.next(timeout=1.5) is None  # nothing new: no event
        stack.insert(tenant, patient)
        _, changed = resumed.next(timeout=5)
        assert (changed["id"], changed["data"]) == stack.stats(token) != (etag, body)
        resumed.close()


def test_a_psql_insert_wakes_its_tenants_streams_and_no_other(stack):
    tenant, token, patient = stack.tenant()
    other, other_token, _ = stack.tenant()
    mine = [stack.open(token) for _ in range(3)]
    theirs = stack.open(other_token)
    for events in [*mine, theirs]:
        assert events.next() is not None
    committed = stack.insert(tenant, patient)
    lags = []
    for events in mine:
        at, event = events.next(timeout=5)
        lags.append(at - committed)
        assert json.loads(event["data"])["nextMonth"]["confirmed"] + json.loads(event["data"])["month"]["confirmed"] == 1
        assert event["id"] == stack.stats(token)[0]
    assert max(lags) < 2.0, lags
    assert theirs.next(timeout=1.5) is None
    for events in [*mine, theirs]:
        events.close()


def test_revoking_the_tokens_ends_the_stream_within_a_second(stack):
    tenant, token, _ = stack.tenant()
    _, other_token, _ = stack.tenant()
    events, other = stack.open(token), stack.open(other_token)
    assert events.next() is not None and other.next() is not None
    subprocess.run([sys.executable, "-m", "flask", "tenants", "revoke-tokens", tenant], cwd=ROOT,
                   env=stack.server.env, check=True, capture_output=True)
    returned = time.monotonic()
    assert events.ended.wait(1.5), "the stream outlived the revocation"
    assert time.monotonic() - returned < 1.0 + 0.25  # the reader's own scheduling, at most
    assert not other.ended.wait(1.0)  # another tenant's stream stays open
    assert stack.open(token).status == 401
    other.close()


def test_the_stream_ends_when_its_token_expires(stack):
    tenant, _, _ = stack.tenant()
    token = _short_token(stack.server, tenant, seconds=3)
    events = stack.open(token)
    opened = time.monotonic()
    assert events.next() is not None
    assert events.ended.wait(6)
    assert 1.5 < time.monotonic() - opened < 4.5


def test_a_token_in_the_query_string_is_refused(stack):
    tenant, token, _ = stack.tenant()
    for query in (f"?token={token}", f"?access_token={token}", "?tenantId=" + tenant + "&bogus=1"):
        refused = stack.open(None, query=query)
        assert refused.status in (400, 401) and token not in refused.body.decode()
        assert refused.status == 400
    assert stack.open(None).status == 401


# -- tickets ---------------------------------------------------------------------------------


def _post(stack: Stack, path: str, token: str, body: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", stack.server.port, timeout=10)
    conn.request("POST", path, body=json.dumps(body or {}),
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")


def test_a_ticket_opens_one_stream_once_and_resumes_with_last_event_id(stack):
    tenant, token, patient = stack.tenant()
    status, ticket = _post(stack, "/api/v1/stream-tickets", token)
    assert status == 201 and 0 < ticket["expiresIn"] <= 60
    events = stack.open(None, query=f"?ticket={ticket['ticket']}")
    assert events.status == 200
    _, first = events.next()
    events.close()
    assert stack.open(None, query=f"?ticket={ticket['ticket']}").status == 401  # spent

    # Many requests with one ticket at once, across workers: exactly one stream.
    _, ticket = _post(stack, "/api/v1/stream-tickets", token, {"tenantId": tenant})
    with ThreadPoolExecutor(8) as pool:
        tries = list(pool.map(lambda _: stack.open(None, query=f"?ticket={ticket['ticket']}"), range(8)))
    assert sorted(t.status for t in tries) == [200] + [401] * 7
    for t in tries:
        t.close()

    # Resuming: a new ticket and the last event's id; nothing is sent until something changes.
    _, ticket = _post(stack, "/api/v1/stream-tickets", token)
    resumed = stack.open(None, query=f"?ticket={ticket['ticket']}&lastEventId={first['id']}")
    assert resumed.next(timeout=1.5) is None
    stack.insert(tenant, patient)
    assert resumed.next(timeout=5)[1]["id"] == stack.stats(token)[0]
    resumed.close()

    # Bound to the tenant: another tenant's name is refused, and revocation refuses an unspent one.
    _, other_token, _ = stack.tenant()
    assert _post(stack, "/api/v1/stream-tickets", other_token, {"tenantId": tenant})[0] == 403
    _, ticket = _post(stack, "/api/v1/stream-tickets", token)
    time.sleep(0.01)
    subprocess.run([sys.executable, "-m", "flask", "tenants", "revoke-tokens", tenant], cwd=ROOT,
                   env=stack.server.env, check=True, capture_output=True)
    deadline = time.monotonic() + 5  # a listener tick or so: once the token itself is refused ...
    while (refused := stack.server.request("GET", STATS, token=token)[0]) != 401 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refused == 401
    assert stack.open(None, query=f"?ticket={ticket['ticket']}").status == 401  # ... so is its ticket


def _short_token(server: Server, tenant: str, seconds: int) -> str:
    from alignwork import create_app
    from alignwork.auth import TENANT, issue_token

    signer = create_app({"SECRET_KEY": server.env["ALIGNWORK_SECRET_KEY"], "SQLALCHEMY_DATABASE_URI": "sqlite://",
                         "CACHE_TYPE": "NullCache"})
    with signer.app_context():
        return issue_token(tenant, seconds, TENANT)


# -- servers of their own ----------------------------------------------------------------------


def test_tickets_expire(tmp_path):
    stack = _start(tmp_path, "sqlite-simple", workers=1, env={"ALIGNWORK_STREAM_TICKET_SECONDS": "1"})
    _, token, _ = stack.tenant()
    _, ticket = _post(stack, "/api/v1/stream-tickets", token)
    assert ticket["expiresIn"] == 1
    time.sleep(1.5)
    assert stack.open(None, query=f"?ticket={ticket['ticket']}").status == 401


def test_caps_per_tenant_and_per_process(tmp_path):
    stack = _start(tmp_path, "sqlite-simple", workers=1, env={
        "ALIGNWORK_STREAMS_PER_TENANT": "2", "ALIGNWORK_STREAMS_PER_PROCESS": "3"})
    _, token, _ = stack.tenant()
    _, other_token, _ = stack.tenant()
    held = [stack.open(token), stack.open(token)]
    refused = stack.open(token)
    assert [e.status for e in held] == [200, 200] and refused.status == 429
    assert int(refused.response.getheader("Retry-After")) > 0
    held.append(stack.open(other_token))
    full = stack.open(other_token)
    assert held[-1].status == 200 and full.status == 503 and int(full.response.getheader("Retry-After")) > 0
    conn = http.client.HTTPConnection("127.0.0.1", stack.server.port, timeout=10)
    conn.request("GET", "/api/v1/appointments/cache-metrics", headers={"Authorization": f"Bearer {stack.server.admin}"})
    summary = json.loads(conn.getresponse().read())
    assert summary["streams_open"] == 3 and summary["streams_refused"] == 2
    held[0].close()  # the server learns of it at its next write (a keep-alive, within a second)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (again := stack.open(token)).status != 200:
        time.sleep(0.2)
    assert again.status == 200


def test_a_worker_class_that_cannot_stream_answers_503(tmp_path):
    stack = _start(tmp_path, "sqlite-simple", workers=1, env={"GUNICORN_WORKER_CLASS": "gthread",
                                                                "GUNICORN_THREADS": "4"})
    _, token, _ = stack.tenant()
    refused = stack.open(token)
    assert refused.status == 503 and int(refused.response.getheader("Retry-After")) > 0
    assert stack.stats(token)[0]  # polling works


def test_a_graceful_stop_and_a_reload_end_streams_cleanly(tmp_path):
    stack = _start(tmp_path, "sqlite-simple", workers=1)
    _, token, _ = stack.tenant()
    events = stack.open(token)
    assert events.next() is not None
    stack.server.process.send_signal(signal.SIGHUP)
    assert events.ended.wait(5)
    ending = [fields for _, fields in list(events.items.queue) if "comment" in fields]
    assert any(fields["comment"].strip() == "end shutdown" for fields in ending)
    deadline = time.monotonic() + 2
    while (again := stack.open(token)).status != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert again.status == 200 and again.next() is not None

    stopping = time.monotonic()
    stack.server.process.send_signal(signal.SIGTERM)
    assert again.ended.wait(5)
    assert stack.server.process.wait(10) == 0
    assert time.monotonic() - stopping < 5  # not the 20 s graceful timeout


# -- in process (no greenlets here: the stream is refused, as under sync or gthread) -------------


def test_without_greenlets_the_stream_is_a_503_and_cors_works_as_for_mega_stats(make_app, cache_backend):
    from tests.conftest import Builder

    app = make_app(cache=cache_backend, CORS_ORIGINS=["https://dash.example"])
    Builder(app).tenant("acme")
    client = app.test_client()
    refused = client.get(STREAM + "?tenantId=acme", headers={"Origin": "https://dash.example"})
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
    assert refused.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]
    preflight = client.options(STREAM, auth=False, headers={
        "Origin": "https://dash.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert client.get(STREAM + "?tenantId=acme&colour=red").status_code == 400


def test_a_ticket_is_taken_once_from_either_cache(make_app, cache_backend):
    from alignwork.services import stream_tickets

    app = make_app(cache=cache_backend)
    with app.app_context():
        ticket, seconds = stream_tickets.issue("acme", 1000.5, int(time.time()) + 30)
        assert 28 <= seconds <= 30  # never past the token
        found = stream_tickets.redeem(ticket)
        assert (found.tenant_id, found.issued_at) == ("acme", 1000.5)
        assert stream_tickets.redeem(ticket) is None
        assert stream_tickets.redeem("not-a-ticket") is None


def test_tickets_are_refused_while_redis_is_unreachable(make_app):
    from alignwork.services import stream_tickets

    require_redis()
    app = make_app(cache="redis", CACHE_REDIS_URL="redis://127.0.0.1:1/0", CACHE_REDIS_SOCKET_TIMEOUT=0.2)
    with app.app_context():
        with pytest.raises(stream_tickets.TicketsUnavailable):
            stream_tickets.issue("acme", 1.0, int(time.time()) + 60)
        with pytest.raises(stream_tickets.TicketsUnavailable):
            stream_tickets.redeem("some-ticket")


def test_a_stream_gets_an_event_at_its_zones_midnight(make_app, cache_backend):
    """The hub in this process (no HTTP): 0.5 s before local midnight a stream waits; at midnight
    its group reads the next day's entry (another ETag: the date is in it) and sends it."""
    import time_machine
    from zoneinfo import ZoneInfo

    from alignwork.services.stats import stream_hub
    from tests.conftest import Builder

    app = make_app(cache=cache_backend)
    Builder(app).tenant("acme", timezone="America/Recife")
    zone = ZoneInfo("America/Recife")
    late = datetime.now(zone).replace(hour=23, minute=59, second=59, microsecond=500_000)
    with time_machine.travel(late, tick=True), app.app_context():
        subscription = stream_hub.hub().open("acme", zone, time.time() + 30, None)
        try:
            first = subscription.first()
            assert first.news and first.state.day == late.date().isoformat()
            # (On Redis the watcher may wake it once before, for the generation the first read
            # published: a step without news, which sends nothing.)
            step = next(step for step in subscription.steps() if step.news or step.ending)
            assert step.news and step.state.day == (late + timedelta(days=1)).date().isoformat()
            assert step.state.etag != first.state.etag
        finally:
            subscription.close()
        assert stream_hub.hub().open_streams == 0
