"""The JSON API for patients and appointments, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from alignwork.extensions import db
from alignwork.models import Appointment
from tests.conftest import utc

BASE = "/api/v1/appointments"


@pytest.fixture
def acme(build):
    build.tenant("acme")
    return {"tenant": "acme", "patient": build.patient("acme", "Ana")}


def new_appointment(client, patient, **fields):
    body = {"tenantId": "acme", "patientId": patient, "startsAt": "2026-03-10T09:30:00-03:00",
            "durationMin": 30, **fields}
    return client.post(BASE, json=body)


def test_create_returns_the_stored_appointment_in_utc(client, acme):
    response = new_appointment(client, acme["patient"], status="confirmed")
    assert response.status_code == 201
    body = response.get_json()
    assert body["startsAt"] == "2026-03-10T12:30:00.000Z"
    assert body["tenantId"] == "acme"
    assert body["patientId"] == acme["patient"]
    assert body["durationMin"] == 30 and body["status"] == "confirmed"
    assert body["createdAt"].endswith("Z") and body["updatedAt"].endswith("Z")
    assert client.get(f"{BASE}/{body['id']}?tenantId=acme").get_json() == body


def test_status_defaults_to_pending(client, acme):
    assert new_appointment(client, acme["patient"]).get_json()["status"] == "pending"


def test_starts_at_is_aware_utc_when_read_back(app, client, acme):
    created = new_appointment(client, acme["patient"], startsAt="2026-03-10T23:30:00+05:45").get_json()
    with app.app_context():
        stored = db.session.get(Appointment, created["id"])
        assert stored.starts_at == utc(2026, 3, 10, 17, 45)
        assert stored.starts_at.utcoffset().total_seconds() == 0


def test_list_is_paginated_and_ordered_by_start(client, build, acme):
    starts = [utc(2026, 3, d, 12) for d in (5, 1, 3, 4, 2)]
    build.appointments("acme", [(s, "pending") for s in starts], patient_id=acme["patient"])
    page = client.get(f"{BASE}?tenantId=acme&page=2&page_size=2").get_json()
    assert page["total"] == 5 and page["page"] == 2 and page["page_size"] == 2
    assert page["total_pages"] == 3
    assert [a["startsAt"][:10] for a in page["data"]] == ["2026-03-03", "2026-03-04"]


def test_list_filters_half_open_range_and_status(client, build, acme):
    build.appointments("acme", [
        (utc(2026, 3, 1, 3), "confirmed"),   # == from: included
        (utc(2026, 3, 1, 15), "pending"),
        (utc(2026, 3, 2, 3), "confirmed"),   # == to: excluded
    ], patient_id=acme["patient"])
    query = "from=2026-03-01T00:00:00-03:00&to=2026-03-02T00:00:00-03:00"
    all_in_range = client.get(f"{BASE}?tenantId=acme&{query}").get_json()
    assert [a["startsAt"] for a in all_in_range["data"]] == [
        "2026-03-01T03:00:00.000Z", "2026-03-01T15:00:00.000Z"]
    confirmed = client.get(f"{BASE}?tenantId=acme&{query}&status=confirmed").get_json()
    assert confirmed["total"] == 1


def test_patch_changes_only_given_fields(client, acme):
    created = new_appointment(client, acme["patient"]).get_json()
    response = client.patch(f"{BASE}/{created['id']}?tenantId=acme",
                            json={"status": "cancelled", "startsAt": "2026-03-11T10:00:00Z"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "cancelled" and body["startsAt"] == "2026-03-11T10:00:00.000Z"
    assert body["durationMin"] == 30


def test_delete_answers_204_then_404(client, acme):
    created = new_appointment(client, acme["patient"]).get_json()
    response = client.delete(f"{BASE}/{created['id']}?tenantId=acme")
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"{BASE}/{created['id']}?tenantId=acme").status_code == 404


def test_patients_are_created_and_listed_per_tenant(client, build, acme):
    build.tenant("other")
    response = client.post("/api/v1/patients", json={"tenantId": "acme", "name": "Bruno"})
    assert response.status_code == 201 and response.get_json()["name"] == "Bruno"
    names = [p["name"] for p in client.get("/api/v1/patients?tenantId=acme").get_json()["data"]]
    assert names == ["Ana", "Bruno"]
    assert client.get("/api/v1/patients?tenantId=other").get_json()["total"] == 0


# -- another tenant's ids are indistinguishable from missing ones --------------------------


@pytest.fixture
def foreign(build, client, acme):
    build.tenant("rival")
    rival_patient = build.patient("rival", "Zed")
    appointment = client.post(BASE, json={"tenantId": "rival", "patientId": rival_patient,
                                          "startsAt": "2026-03-10T09:00:00Z", "durationMin": 15})
    return {"patient": rival_patient, "appointment": appointment.get_json()["id"]}


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_other_tenants_appointment_is_404_like_a_missing_one(client, foreign, method):
    kwargs = {"json": {"status": "confirmed"}} if method == "patch" else {}
    theirs = getattr(client, method)(f"{BASE}/{foreign['appointment']}?tenantId=acme", **kwargs)
    missing = getattr(client, method)(f"{BASE}/999999?tenantId=acme", **kwargs)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json()["errors"].keys() == missing.get_json()["errors"].keys() == {"id"}
    assert client.get(f"{BASE}/{foreign['appointment']}?tenantId=rival").get_json()["status"] == "pending"


def test_other_tenants_patient_in_body_is_404_naming_the_field(app, client, foreign):
    response = new_appointment(client, foreign["patient"])
    assert response.status_code == 404
    assert list(response.get_json()["errors"]) == ["patientId"]
    with app.app_context():
        assert db.session.query(Appointment).filter_by(tenant_id="acme").count() == 0


# -- bad input: always a JSON 4xx naming the field, never a 500, nothing half-written -------


BAD_CREATES = [
    ({"startsAt": "2026-03-10T09:30:00"}, "startsAt"),            # naive: refused, not guessed
    ({"startsAt": "tomorrow"}, "startsAt"),
    ({"startsAt": "1999-12-31T23:00:00Z"}, "startsAt"),
    ({"startsAt": None}, "startsAt"),
    ({"durationMin": 0}, "durationMin"),
    ({"durationMin": 1441}, "durationMin"),
    ({"durationMin": "30"}, "durationMin"),
    ({"durationMin": 12.5}, "durationMin"),
    ({"status": "done"}, "status"),
    ({"patientId": "1"}, "patientId"),
    ({"patientId": -1}, "patientId"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize("change,field", BAD_CREATES)
def test_bad_create_is_400_naming_the_field(app, client, acme, change, field):
    response = new_appointment(client, acme["patient"], **change)
    assert response.status_code == 400
    assert response.is_json and field in response.get_json()["errors"]
    with app.app_context():
        assert db.session.query(Appointment).count() == 0


@pytest.mark.parametrize("missing", ["patientId", "startsAt", "durationMin"])
def test_missing_field_is_400_naming_it(client, acme, missing):
    body = {"tenantId": "acme", "patientId": acme["patient"], "startsAt": "2026-03-10T09:30:00Z",
            "durationMin": 30}
    del body[missing]
    response = client.post(BASE, json=body)
    assert response.status_code == 400
    assert missing in response.get_json()["errors"]


def test_unknown_patient_is_404_naming_the_field(client, acme):
    response = new_appointment(client, 424242)
    assert response.status_code == 404 and list(response.get_json()["errors"]) == ["patientId"]


@pytest.mark.parametrize("query,field", [
    ("page_size=101", "page_size"),
    ("page_size=0", "page_size"),
    ("page=0", "page"),
    ("page=x", "page"),
    ("from=2026-03-01T00:00:00", "from"),
    ("from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", "to"),
    ("status=done", "status"),
])
def test_bad_list_query_is_400_naming_the_parameter(client, acme, query, field):
    response = client.get(f"{BASE}?tenantId=acme&{query}")
    assert response.status_code == 400
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize("body,field", [
    ({}, "_schema"),
    ({"status": "done"}, "status"),
    ({"durationMin": 0}, "durationMin"),
    ({"startsAt": "2026-03-10 10:00"}, "startsAt"),
    ({"tenantId": "acme", "patientId": 3}, "patientId"),
])
def test_bad_patch_is_400_and_changes_nothing(client, acme, body, field):
    created = new_appointment(client, acme["patient"]).get_json()
    response = client.patch(f"{BASE}/{created['id']}?tenantId=acme", json=body)
    assert response.status_code == 400 and field in response.get_json()["errors"]
    assert client.get(f"{BASE}/{created['id']}?tenantId=acme").get_json() == created


def test_tenant_in_query_and_body_must_agree(client, acme, build):
    build.tenant("rival")
    response = client.post("/api/v1/patients?tenantId=rival", json={"tenantId": "acme", "name": "X"})
    assert response.status_code == 400 and "tenantId" in response.get_json()["errors"]
    assert client.get("/api/v1/patients?tenantId=rival").get_json()["total"] == 0


def test_malformed_json_is_a_json_400(client, acme):
    response = client.post(f"{BASE}?tenantId=acme", data="{not json", content_type="application/json")
    assert response.status_code == 400 and response.is_json


@pytest.mark.parametrize("method,url,status", [
    ("get", "/nowhere", 404),
    ("put", f"{BASE}/1?tenantId=acme", 405),
    ("post", f"{BASE}/mega-stats?tenantId=acme", 405),
])
def test_unknown_routes_and_methods_are_json(client, acme, method, url, status):
    response = getattr(client, method)(url)
    assert response.status_code == status
    assert response.get_json()["code"] == status


def test_openapi_document_describes_the_api(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/appointments", "/api/v1/appointments/mega-stats",
            "/api/v1/appointments/{appointment_id}", "/api/v1/patients"} <= set(spec["paths"])
    create = spec["paths"]["/api/v1/appointments"]["post"]
    assert "201" in create["responses"]
    assert client.get("/api/docs").status_code == 200


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready", "database": "ok"}


def test_readiness_is_503_when_the_database_is_unreachable(make_app, tmp_path):
    broken = make_app(create_schema=False,
                      SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["message"] == "Database unreachable."


def test_an_unreachable_database_is_a_503_to_retry(make_app):
    from tests.conftest import require_postgres, token_for

    require_postgres()
    app = make_app(create_schema=False,
                   SQLALCHEMY_DATABASE_URI="postgresql+psycopg://postgres@127.0.0.1:1/test",
                   SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}})
    response = app.test_client().get(
        "/api/v1/appointments/mega-stats",
        headers={"Authorization": f"Bearer {token_for(app, 'acme')}"}, auth=False)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["message"] == "The database is unavailable or busy; retry shortly."


def test_a_database_bug_is_a_500_not_a_503(make_app):
    """A table missing from a database migrated to this release's head is a bug, not a missed
    migration (test_unmigrated.py has those)."""
    from sqlalchemy import text

    from tests.conftest import Builder, token_for

    app = make_app()
    Builder(app).tenant("acme")
    with app.app_context():
        db.session.execute(text("DROP TABLE appointment_counts"))
        db.session.commit()
    response = app.test_client().get(
        "/api/v1/appointments/mega-stats",
        headers={"Authorization": f"Bearer {token_for(app, 'acme')}"}, auth=False)
    assert response.status_code == 500 and "Retry-After" not in response.headers
    assert response.get_json()["code"] == 500
