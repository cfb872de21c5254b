"""The query string says only what an operation takes, once: an unknown parameter (a misspelt
``pageSize``, say) or a repeated one is a 400 naming it, never silently dropped. Paging is spelt
``page``/``pageSize`` like the rest of the API; the old ``page_size`` still works for one release,
answered with ``Deprecation``."""

from __future__ import annotations

import re

import pytest

from alignwork.extensions import db
from alignwork.models import Appointment, Patient
from tests.conftest import Builder, token_for, utc

STATS = "/api/v1/appointments/mega-stats"
APPTS = "/api/v1/appointments"
PATIENTS = "/api/v1/patients"
BODIES = {
    "POST /api/v1/patients": {"name": "Bia"},
    "POST /api/v1/appointments": {"patientId": 1, "startsAt": "2026-05-14T12:00:00Z", "durationMin": 30},
    "PATCH /api/v1/appointments/1": {"status": "confirmed"},
    "POST /api/v1/stream-tickets": {},
}


@pytest.fixture
def clinic(make_app):
    app = make_app(database="sqlite")
    build = Builder(app)
    build.tenant("acme")
    patient = build.patient("acme")
    build.appointments("acme", [(utc(2026, 5, d, 12), "pending") for d in range(1, 6)], patient_id=patient)
    return app


def _operations(app) -> list[tuple[str, str, str]]:
    """(method, path, endpoint) of every API operation, from the app's own URL map."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("api-docs.", "static")) or rule.rule.startswith("/api/docs"):
            continue
        if not rule.rule.startswith("/api/") and rule.rule != "/metrics":
            continue
        path = re.sub(r"<[^>]+>", "1", rule.rule)
        found += [(method, path, rule.endpoint) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def _call(app, method, path, endpoint, query):
    scope = "admin" if endpoint.startswith("operations.") else "tenant"
    token = token_for(app, None if scope == "admin" else "acme", scope=scope)
    body = BODIES.get(f"{method} {path}")
    return app.test_client().open(f"{path}?{query}", method=method, json=body,
                                  headers={"Authorization": f"Bearer {token}"})


def _refused(response, name):
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    answer = response.get_json()
    assert answer["code"] == 400 and name in answer["errors"], answer
    return answer["errors"][name]


def test_every_operation_refuses_an_unknown_parameter_naming_it(clinic):
    operations = _operations(clinic)
    assert len(operations) == 13, operations  # the fuzzed list in test_hostile_input.py
    for method, path, endpoint in operations:
        assert _refused(_call(clinic, method, path, endpoint, "colour=red"), "colour"), (method, path)
    with clinic.app_context():  # the writes were refused, not applied with the parameter dropped
        assert db.session.query(Patient).count() == 1
        assert {a.status for a in db.session.query(Appointment)} == {"pending"}
        assert db.session.query(Appointment).count() == 5


@pytest.mark.parametrize("query,name", [
    ("pageSize=1000", "pageSize"),     # a page size over 100 is refused, not clamped
    ("pagesize=10", "pagesize"),       # misspelt: unknown, not ignored
    ("page_size=101", "page_size"),
    ("pageSize=10&page_size=10", "page_size"),  # one spelling at a time
])
def test_a_page_size_that_cannot_be_honoured_is_refused(clinic, query, name):
    _refused(clinic.test_client().get(f"{APPTS}?tenantId=acme&{query}"), name)


@pytest.mark.parametrize("path,query,name", [
    (STATS, "tz=UTC&tz=Asia/Tokyo", "tz"),
    (STATS, "tz=UTC&tz=UTC", "tz"),
    (STATS, "tenantId=acme&tenantId=acme", "tenantId"),
    (APPTS, "pageSize=2&pageSize=3", "pageSize"),
    (APPTS, "status=pending&status=confirmed", "status"),
    (f"{APPTS}/1", "tenantId=acme&tenantId=acme", "tenantId"),
    ("/api/v1/tenant", "tenantId=acme&tenantId=acme", "tenantId"),
])
def test_a_repeated_single_valued_parameter_is_refused(clinic, path, query, name):
    token = token_for(clinic, "acme")
    for _ in range(2):  # refused every time: a refusal is never remembered as a parse
        response = clinic.test_client().get(f"{path}?{query}", headers={"Authorization": f"Bearer {token}"})
        assert "2 times" in _refused(response, name)[0]


@pytest.mark.parametrize("path", [APPTS, PATIENTS])
def test_paging_is_camel_case_and_the_body_carries_both_spellings(clinic, path):
    response = clinic.test_client().get(f"{path}?tenantId=acme&page=2&pageSize=2")
    assert response.status_code == 200
    page = response.get_json()
    assert page["pageSize"] == page["page_size"] == 2 and page["page"] == 2
    expected_pages = 3 if path == APPTS else 1
    assert page["totalPages"] == page["total_pages"] == expected_pages
    assert "Deprecation" not in response.headers and "Link" not in response.headers


@pytest.mark.parametrize("path", [APPTS, PATIENTS])
def test_the_old_spelling_works_for_a_release_and_says_so(clinic, path):
    old = clinic.test_client().get(f"{path}?tenantId=acme&page=2&page_size=2")
    new = clinic.test_client().get(f"{path}?tenantId=acme&page=2&pageSize=2")
    assert old.status_code == 200 and old.get_json() == new.get_json()
    assert old.headers["Deprecation"] == "true"
    assert re.fullmatch(r'</docs/api\.md>; rel="deprecation".*', old.headers["Link"])


def test_the_openapi_document_names_one_spelling_and_marks_the_old_one(clinic):
    spec = clinic.test_client().get("/api/openapi.json").get_json()
    for path in (APPTS, PATIENTS):
        parameters = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert not parameters["pageSize"].get("deprecated")
        assert parameters["pageSize"]["schema"]["maximum"] == 100
        assert parameters["page_size"]["deprecated"] is True
        assert {"Deprecation", "Link"} <= set(spec["paths"][path]["get"]["responses"]["200"]["headers"])
    for name in ("AppointmentPage", "PatientPage"):
        properties = spec["components"]["schemas"][name]["properties"]
        assert not properties["pageSize"].get("deprecated")
        assert not properties["totalPages"].get("deprecated")
        assert properties["page_size"]["deprecated"] and properties["total_pages"]["deprecated"]
    # mega-stats takes what it took: refusing the rest needs no change to its description
    stats = spec["paths"][STATS]["get"]
    assert sorted(p["name"] for p in stats["parameters"]) == ["tenantId", "tz"]
