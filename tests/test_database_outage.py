"""PostgreSQL stopped under polling: dashboards keep their numbers, writes are refused whole.

The test starts its own PostgreSQL (``tests/postgres_server.py``) so it can stop it.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from alignwork.extensions import db
from alignwork.models import Appointment
from tests.conftest import Builder, utc
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.slow

STATS = "/api/v1/appointments/mega-stats"
NOW = utc(2026, 5, 13, 14)  # a Wednesday afternoon in Recife


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def app(make_app, postgres, cache_backend):
    with time_machine.travel(NOW, tick=True):
        app = make_app(cache=cache_backend, SQLALCHEMY_DATABASE_URI=postgres.url)
        with app.app_context():
            db.drop_all()
            db.create_all()
        build = Builder(app)
        for tenant in ("acme", "rival", "cold"):
            build.tenant(tenant)
            build.appointments(tenant, [(NOW + timedelta(hours=1), "confirmed")])
        yield app


def poll(client, tenant, tz=None):
    response = client.get(f"{STATS}?tenantId={tenant}" + (f"&tz={tz}" if tz else ""))
    return response.status_code, response.headers.get("X-Cache"), response.get_json(), response.headers


def test_polls_are_answered_from_the_cache_while_postgres_is_down(app, postgres):
    client = app.test_client()
    with time_machine.travel(NOW, tick=True):
        assert poll(client, "acme")[1] == "MISS"
        assert poll(client, "rival")[1] == "MISS"
        before = poll(client, "rival")[2]
        Builder(app).appointments("rival", [(NOW + timedelta(hours=2), "pending")])  # retires rival's entry
        with app.app_context():
            rows_before = db.session.scalar(select(func.count()).select_from(Appointment))

        postgres.stop()
        try:
            answers: list = []

            def dashboard(tenant):
                for _ in range(10):
                    answers.append((tenant, poll(client, tenant)))
                    time.sleep(0.01)

            pollers = [threading.Thread(target=dashboard, args=(t,)) for t in ("acme", "rival") * 3]
            for thread in pollers:
                thread.start()
            for thread in pollers:
                thread.join()

            by_tenant = {t: [a for name, a in answers if name == t] for t in ("acme", "rival")}
            assert {(status, outcome) for status, outcome, _, _ in by_tenant["acme"]} == {(200, "HIT")}
            # rival's entry was retired by the write: the last numbers it holds, marked STALE.
            assert {(status, outcome) for status, outcome, _, _ in by_tenant["rival"]} == {(200, "STALE")}
            assert all(body == before and int(headers["Age"]) >= 0
                       for _, _, body, headers in by_tenant["rival"])

            status, _, body, headers = poll(client, "cold")  # nothing cached: nothing to answer with
            assert status == 503 and body["code"] == 503 and headers["Retry-After"]
            status, _, body, headers = poll(client, "acme", tz="Asia/Tokyo")
            assert status == 503 and headers["Content-Type"] == "application/json"

            # Writes need the database: refused whole.
            response = client.post("/api/v1/appointments", json={
                "tenantId": "acme", "patientId": 1, "startsAt": (NOW + timedelta(hours=3)).isoformat(),
                "durationMin": 30})
            assert response.status_code == 503 and response.get_json()["code"] == 503
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.get_json()["message"] == "Database unreachable."
        finally:
            postgres.start()

        assert client.get("/readyz").status_code == 200
        _, outcome, after, _ = poll(client, "rival")
        assert outcome == "MISS" and after["today"] == {"confirmed": 1, "pending": 1}
        assert poll(client, "cold")[0] == 200
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Appointment)) == rows_before


def test_a_pool_with_no_free_connection_is_a_503_or_stale_not_a_500(make_app):
    """Every connection busy (a slow database under load): the pool's timeout is answered like an
    unreachable database."""
    app = make_app(SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.2})
    build = Builder(app)
    build.tenant("acme")
    build.tenant("cold")
    client = app.test_client()
    with time_machine.travel(NOW, tick=True):
        assert poll(client, "acme")[1] == "MISS"
        build.appointments("acme", [(NOW + timedelta(hours=1), "confirmed")])  # retires the entry
        with app.app_context(), db.engine.connect():  # the only connection, held
            status, outcome, body, headers = poll(client, "acme")
            assert (status, outcome) == (200, "STALE") and "Age" in headers
            status, _, body, headers = poll(client, "cold")
            assert status == 503 and body["code"] == 503 and headers["Retry-After"] == "1"
        assert poll(client, "acme")[:2] == (200, "MISS")
