"""``Idempotency-Key`` on the creating POSTs, on SQLite and PostgreSQL: a retry is answered with
the first success and creates nothing; the key is the tenant's; keys live in the database, in
the transaction of the rows they answer for."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from alignwork.extensions import db
from alignwork.models import Appointment, IdempotencyKey, Patient
from alignwork.services import idempotency
from tests.conftest import PG_URL, Builder, token_for
from tests.tcp_proxy import Proxy

APPOINTMENTS = "/api/v1/appointments"
PATIENTS = "/api/v1/patients"


@pytest.fixture
def acme(build):
    build.tenant("acme")
    build.tenant("globex")
    return build.patient("acme", "Ana")


def booking(patient, **fields):
    return {"tenantId": "acme", "patientId": patient, "startsAt": "2026-03-10T09:30:00-03:00",
            "durationMin": 30, **fields}


def rows(app, model=Appointment) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def post(client, path, body, key=None):
    return client.post(path, json=body, headers={"Idempotency-Key": key} if key is not None else {})


@pytest.mark.parametrize("path, body", [(APPOINTMENTS, None), (PATIENTS, {"tenantId": "acme", "name": "Bia"})])
def test_a_retry_is_answered_with_the_first_success_and_creates_nothing(app, client, acme, path, body):
    body = body or booking(acme)
    model = Appointment if path == APPOINTMENTS else Patient
    before = rows(app, model)
    first = post(client, path, body, "order-7f3a")
    again = post(client, path, body, "order-7f3a")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert rows(app, model) == before + 1


def test_the_quoted_form_is_the_same_key(app, client, acme):
    first = post(client, APPOINTMENTS, booking(acme), "abc")
    again = post(client, APPOINTMENTS, booking(acme), '"abc"')
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json() == first.get_json()
    assert rows(app) == 1


def test_the_same_request_is_the_validated_body(app, client, acme):
    """An omitted default, the same instant in another offset, and the tenant named or implied
    by the token make the same request."""
    post(client, APPOINTMENTS, booking(acme), "k1")
    implied = booking(acme, status="pending", startsAt="2026-03-10T12:30:00Z")
    del implied["tenantId"]
    again = client.post(APPOINTMENTS, json=implied,
                        headers={"Idempotency-Key": "k1", "Authorization": "Bearer " + token_for(app, "acme")})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert rows(app) == 1


def test_the_same_key_with_another_request_is_a_422(app, client, acme):
    post(client, APPOINTMENTS, booking(acme), "k1")
    other = post(client, APPOINTMENTS, booking(acme, durationMin=45), "k1")
    assert other.status_code == 422
    assert "Idempotency-Key" in other.get_json()["errors"]
    on_patients = post(client, PATIENTS, {"tenantId": "acme", "name": "Ana"}, "k1")
    assert on_patients.status_code == 422
    assert rows(app) == 1 and rows(app, Patient) == 1


def test_another_tenants_same_key_is_another_key(app, client, acme, build):
    globex_patient = build.patient("globex", "Gil")
    mine = post(client, APPOINTMENTS, booking(acme), "shared-key")
    theirs = post(client, APPOINTMENTS, booking(globex_patient, tenantId="globex"), "shared-key")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["tenantId"] == "globex" and theirs.get_json()["id"] != mine.get_json()["id"]
    assert rows(app) == 2


def test_without_the_header_every_post_creates(app, client, acme):
    assert post(client, APPOINTMENTS, booking(acme)).status_code == 201
    assert post(client, APPOINTMENTS, booking(acme)).status_code == 201
    assert rows(app) == 2
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 0


def test_a_failure_is_not_stored_and_the_retry_is_processed_afresh(app, client, acme, build):
    missing = acme + 1  # the next patient's id
    refused = post(client, APPOINTMENTS, booking(missing), "retry-me")
    assert refused.status_code == 404
    assert build.patient("acme", "Caio") == missing
    retried = post(client, APPOINTMENTS, booking(missing), "retry-me")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    assert rows(app) == 1


@pytest.mark.parametrize("value", ["", '""', "x" * 256, '"' + "x" * 256 + '"', "caf\u00e9", "a\tb", '"abc', 'ab"c"',
                                   '"a"b"', '"a\\b"'])
def test_a_malformed_key_is_a_400_and_creates_nothing(app, client, acme, value):
    response = client.post(APPOINTMENTS, json=booking(acme),
                           headers=[("Idempotency-Key", value.encode("latin-1").decode("latin-1"))])
    assert response.status_code == 400, value
    assert response.is_json and "Idempotency-Key" in response.get_json()["errors"]
    assert rows(app) == 0


@pytest.mark.parametrize("value", ["x" * 255, '"' + "x" * 255 + '"', "a b", '"a \\"quoted\\" \\\\ key"', "~!#$%&'*+-.^_`|"])
def test_every_printable_key_up_to_255_characters_is_taken(client, acme, value):
    assert post(client, APPOINTMENTS, booking(acme), value).status_code == 201


def _hold_key_elsewhere(app, key):
    """A connection of its own, holding ``key`` for acme the way an unfinished request does."""
    with app.app_context():
        engine = db.engine
    connection = engine.connect()
    held = connection.execute(sa.text(
        "SELECT pg_try_advisory_xact_lock(hashtext('alignwork idempotency ' || current_schema()), "
        "hashtext('acme' || ' ' || :key))"), {"key": key}).scalar_one()
    assert held
    return connection


def test_a_key_in_flight_is_a_409_on_postgresql(make_app):
    """Another transaction holds the key (its request is being processed, or its COMMIT never
    arrived): told at once, with Retry-After, not made to wait."""
    app = make_app(database="postgresql")
    build = Builder(app)
    build.tenant("acme")
    patient = build.patient("acme")
    client = app.test_client()
    connection = _hold_key_elsewhere(app, "busy")
    try:
        response = post(client, APPOINTMENTS, booking(patient), "busy")
        assert response.status_code == 409 and response.headers["Retry-After"] == "1"
        assert "in progress" in response.get_json()["message"]
        assert post(client, APPOINTMENTS, booking(patient), "free").status_code == 201
    finally:
        connection.close()
    assert post(client, APPOINTMENTS, booking(patient), "busy").status_code == 201
    assert rows(app) == 2


def test_twelve_concurrent_sends_of_one_key_make_one_row(app, acme):
    body = booking(acme)
    start = threading.Barrier(12)
    answers = []

    def send():
        client = app.test_client()
        start.wait()
        answers.append(post(client, APPOINTMENTS, body, "same-click"))

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 12
    created = [a for a in answers if a.status_code == 201]
    assert {a.status_code for a in answers} <= {201, 409}, [(a.status_code, a.get_json()) for a in answers]
    assert created and len({a.get_data() for a in created}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in created) == 1
    assert rows(app) == 1


@pytest.fixture
def behind_proxy(make_app):
    """Two apps of one deployment on PostgreSQL: ``direct`` (which made the schema and acme),
    and ``app``, whose connections pass through a TCP proxy that can lose a reply."""
    direct = make_app(database="postgresql", shared_as="deployment")
    Builder(direct).tenant("acme")
    proxy = Proxy(("127.0.0.1", int(re.search(r":(\d+)/", PG_URL)[1])))
    through_proxy = PG_URL.replace(re.search(r"@([^/]+)/", PG_URL)[1], f"127.0.0.1:{proxy.port}")
    app = make_app(database="postgresql", shared_as="deployment", create_schema=False,
                   SQLALCHEMY_DATABASE_URI=through_proxy)
    yield direct, app, proxy
    proxy.stop()


def test_a_retry_after_a_lost_commit_acknowledgement_is_replayed(behind_proxy):
    """The COMMIT reaches PostgreSQL, its answer never reaches the app: the client is told 503
    (retry with the key), and the retry finds the committed key and replays the 201."""
    direct, app, proxy = behind_proxy
    patient = Builder(direct).patient("acme")
    client = app.test_client()
    assert client.get(f"{APPOINTMENTS}?tenantId=acme").status_code == 200  # a pooled connection
    cut = proxy.lose_reply_after(b"COMMIT")
    lost = post(client, APPOINTMENTS, booking(patient), "lost-ack")
    assert cut.is_set()
    assert lost.status_code == 503
    assert "same Idempotency-Key is safe" in lost.get_json()["message"]
    assert rows(direct) == 1  # committed all the same
    retried = post(client, APPOINTMENTS, booking(patient), "lost-ack")
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    assert rows(direct) == 1


def test_the_503_of_a_post_without_a_key_says_a_retry_may_repeat_it(behind_proxy):
    _, app, proxy = behind_proxy
    client = app.test_client()
    assert client.get(f"{PATIENTS}?tenantId=acme").status_code == 200
    proxy.lose_reply_after(b"COMMIT")
    lost = post(client, PATIENTS, {"tenantId": "acme", "name": "Ana"})
    assert lost.status_code == 503 and "send an Idempotency-Key" in lost.get_json()["message"]


def test_app_connections_bound_an_orphaned_transaction(make_app):
    app = make_app(database="postgresql")
    with app.app_context():
        assert db.session.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar_one() == "30s"
    unbound = make_app(database="postgresql", DATABASE_IDLE_TRANSACTION_SECONDS=0)  # behind PgBouncer
    with unbound.app_context():
        assert db.session.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar_one() == "0"


@pytest.mark.parametrize("value", [-1, 1.5, True, "30"])
def test_an_idle_transaction_bound_that_cannot_work_is_refused(make_app, value):
    from alignwork.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="DATABASE_IDLE_TRANSACTION_SECONDS"):
        make_app(DATABASE_IDLE_TRANSACTION_SECONDS=value)


def _stored(app, key, age):
    with app.app_context():
        db.session.add(IdempotencyKey(tenant_id="acme", key=key, fingerprint="f" * 64, status=201, body="{}",
                                      created_at=datetime.now(timezone.utc) - age))
        db.session.commit()


def _keys(app):
    with app.app_context():
        return set(db.session.scalars(sa.select(IdempotencyKey.key)))


def test_keys_are_kept_24_hours_and_purged_after(app, acme):
    _stored(app, "old", timedelta(hours=24, minutes=1))
    _stored(app, "young", timedelta(hours=23, minutes=59))
    with app.app_context():
        assert idempotency.purge() == 1
    assert _keys(app) == {"young"}


def test_a_write_with_a_key_purges_once_in_a_while(app, client, acme, monkeypatch):
    monkeypatch.setattr(idempotency, "_schedule", idempotency._Schedule())
    _stored(app, "old", timedelta(hours=25))
    post(client, APPOINTMENTS, booking(acme), "new")
    assert _keys(app) == {"new"}
    _stored(app, "old", timedelta(hours=25))
    post(client, APPOINTMENTS, booking(acme), "newer")
    assert _keys(app) == {"new", "newer", "old"}  # not again within the hour


def test_the_openapi_document_names_the_header(client):
    spec = client.get("/api/openapi.json").get_json()
    for path in (APPOINTMENTS, PATIENTS):
        operation = spec["paths"][path]["post"]
        assert {"in": "header", "name": "Idempotency-Key"}.items() <= next(
            p for p in operation["parameters"] if p["name"] == "Idempotency-Key").items()
        assert {"201", "409", "422"} <= set(operation["responses"])
        assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]


def test_sqlite_never_reuses_a_deleted_appointments_id(make_app):
    app = make_app(database="sqlite")
    build = Builder(app)
    build.tenant("acme")
    patient = build.patient("acme")
    client = app.test_client()
    ids = [post(client, APPOINTMENTS, booking(patient)).get_json()["id"] for _ in range(2)]
    assert client.delete(f"{APPOINTMENTS}/{ids[-1]}?tenantId=acme").status_code == 204
    assert post(client, APPOINTMENTS, booking(patient)).get_json()["id"] > ids[-1]
    with app.app_context():
        db.session.execute(sa.delete(Appointment))
        db.session.execute(sa.delete(Patient).where(Patient.id == patient))
        db.session.commit()
    assert build.patient("acme") > patient
