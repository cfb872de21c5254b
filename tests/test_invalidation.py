"""Every committed write invalidates its tenants' cached stats, whoever wrote it; a rollback does
not. On both databases and both cache backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import delete, insert, text, update
from sqlalchemy.exc import IntegrityError

from alignwork.extensions import db
from alignwork.models import Appointment
from tests.conftest import Builder, utc

STATS = "/api/v1/appointments/mega-stats"
NOW = utc(2026, 5, 13, 14)  # a Wednesday afternoon in Recife
SOON = NOW + timedelta(minutes=30)


@pytest.fixture(autouse=True)
def mid_week():
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def app(make_app, database, cache_backend):
    app = make_app(database=database, cache=cache_backend)
    build = Builder(app)
    for tenant in ("acme", "rival"):
        build.tenant(tenant)
        build.appointments(tenant, [(SOON, "confirmed"), (SOON, "pending")])
    return app


def poll(app, tenant):
    response = app.test_client().get(f"{STATS}?tenantId={tenant}")
    assert response.status_code == 200, response.get_json()
    return response.headers["X-Cache"], response.get_json()["today"]


@pytest.fixture
def warm(app):
    """Both tenants cached; returns a function telling which were invalidated since."""
    for tenant in ("acme", "rival"):
        poll(app, tenant)
        assert poll(app, tenant)[0] == "HIT"

    def invalidated():
        return {tenant for tenant in ("acme", "rival") if poll(app, tenant)[0] == "MISS"}

    return invalidated


def test_an_api_write(app, warm):
    client = app.test_client()
    patient = client.post("/api/v1/patients", json={"tenantId": "acme", "name": "Bia"}).get_json()["id"]
    assert warm() == set()  # a patient changes no counts
    response = client.post("/api/v1/appointments", json={
        "tenantId": "acme", "patientId": patient, "startsAt": SOON.isoformat(), "durationMin": 30,
        "status": "confirmed"})
    assert response.status_code == 201
    assert warm() == {"acme"}
    assert poll(app, "acme")[1] == {"confirmed": 2, "pending": 1}


def test_a_shell_session(app, warm):
    """What a developer types in ``flask shell``: objects added and committed by hand."""
    with app.app_context():
        patient = db.session.scalar(db.select(Appointment.patient_id).where(Appointment.tenant_id == "rival"))
        db.session.add(Appointment(tenant_id="rival", patient_id=patient, starts_at=SOON,
                                   duration_min=15, status="pending"))
        db.session.commit()
    assert warm() == {"rival"}
    assert poll(app, "rival")[1] == {"confirmed": 1, "pending": 2}


def test_a_change_through_an_object_loaded_earlier(app, warm):
    with app.app_context():
        appointment = db.session.scalar(db.select(Appointment).where(Appointment.tenant_id == "acme",
                                                                     Appointment.status == "pending"))
        db.session.commit()  # expires it: the next change loads nothing old
        appointment.status = "cancelled"
        db.session.commit()
    assert warm() == {"acme"}
    assert poll(app, "acme")[1] == {"confirmed": 1, "pending": 0}


def test_a_bulk_statement_for_one_tenant(app, warm):
    with app.app_context():
        db.session.execute(update(Appointment).where(Appointment.tenant_id == "acme")
                           .values(status="cancelled"))
        db.session.commit()
    assert warm() == {"acme"}
    assert poll(app, "acme")[1] == {"confirmed": 0, "pending": 0}


def test_a_bulk_delete_of_unknown_tenants_invalidates_every_tenant(app, warm):
    with app.app_context():
        db.session.execute(delete(Appointment).where(Appointment.status == "pending"))
        db.session.commit()
    assert warm() == {"acme", "rival"}
    assert poll(app, "rival")[1] == {"confirmed": 1, "pending": 0}


def test_a_core_insert_names_its_tenants(app, warm):
    with app.app_context():
        patient = db.session.scalar(db.select(Appointment.patient_id).where(Appointment.tenant_id == "rival"))
        db.session.execute(insert(Appointment.__table__), [
            {"tenant_id": "rival", "patient_id": patient, "starts_at": SOON, "duration_min": 30,
             "status": "confirmed", "created_at": NOW, "updated_at": NOW}])
        db.session.commit()
    assert warm() == {"rival"}


def test_raw_sql_through_the_session_invalidates_every_tenant_it_changed(app, warm):
    """Its tenants cannot be read from the text: every generation is dropped and read again
    from the database, so the tenants whose counts moved, and only they, are computed again."""
    with app.app_context():
        db.session.execute(text("UPDATE appointments SET status = 'cancelled' WHERE status = 'pending'"))
        db.session.commit()
    assert warm() == {"acme", "rival"}


def test_raw_sql_that_changes_no_count_retires_nothing(app, warm):
    with app.app_context():
        db.session.execute(text("UPDATE appointments SET duration_min = 45"))
        db.session.commit()
    assert warm() == set()


def test_the_seed_command(app, warm):
    result = app.test_cli_runner().invoke(args=["seed", "--tenant", "acme", "--appointments", "20"])
    assert result.exit_code == 0, result.output
    assert warm() == {"acme"}


def test_a_rollback_invalidates_nothing(app, warm):
    with app.app_context():
        db.session.execute(update(Appointment).values(status="cancelled"))
        patient = db.session.scalar(db.select(Appointment.patient_id).where(Appointment.tenant_id == "acme"))
        db.session.add(Appointment(tenant_id="acme", patient_id=patient, starts_at=SOON,
                                   duration_min=30, status="confirmed"))
        db.session.flush()  # written, then abandoned
        db.session.rollback()
    assert warm() == set()
    assert poll(app, "acme")[1] == {"confirmed": 1, "pending": 1}


def test_a_write_that_fails_at_commit_invalidates_nothing(app, warm):
    """The statement reaches the database and is refused there (a CHECK constraint), so the
    transaction really rolls back after a flush."""
    with app.app_context():
        appointment = db.session.scalar(db.select(Appointment).where(Appointment.tenant_id == "acme"))
        appointment.duration_min = 100_000
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
    assert warm() == set()

