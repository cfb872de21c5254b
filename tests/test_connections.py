"""Every connection enforces foreign keys: SQLite refuses what PostgreSQL refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from alignwork.extensions import db
from tests.conftest import Builder

INSERT = ("INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, created_at, "
          "updated_at) VALUES (:t, :p, '2026-05-13 12:00:00', 30, 'confirmed', '2026-05-13 12:00:00', "
          "'2026-05-13 12:00:00')")


@pytest.mark.parametrize("whose", ["missing", "another tenant's"])
def test_the_database_refuses_an_appointment_for_a_patient_not_of_its_tenant(app, whose):
    build = Builder(app)
    build.tenant("acme")
    build.tenant("beta")
    theirs = build.patient("beta")
    patient = theirs + 1000 if whose == "missing" else theirs
    with app.app_context():
        with pytest.raises(IntegrityError):
            db.session.execute(text(INSERT), {"t": "acme", "p": patient})
        db.session.rollback()
        assert db.session.scalar(text("SELECT count(*) FROM appointments")) == 0
        assert db.session.scalar(text("SELECT count(*) FROM appointment_counts")) == 0


def test_every_pooled_sqlite_connection_enforces_them(make_app):
    app = make_app(database="sqlite")
    with app.app_context():
        connections = [db.engine.connect() for _ in range(3)]
        try:
            assert [c.exec_driver_sql("PRAGMA foreign_keys").scalar() for c in connections] == [1, 1, 1]
        finally:
            for connection in connections:
                connection.close()
