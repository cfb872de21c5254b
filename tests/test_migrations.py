"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from alignwork.extensions import db


def test_upgrade_builds_the_models_schema(make_app, database):
    app = make_app(database=database, create_schema=False)
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert differences == []
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(db.engine).get_indexes("appointments")}
        assert indexes["ix_appointments_tenant_starts_status"] == ["tenant_id", "starts_at", "status"]


def test_downgrade_removes_everything(make_app, database):
    app = make_app(database=database, create_schema=False)
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}


def test_inserts_that_do_not_name_the_version_still_work(make_app, database):
    """Raw SQL, or the previous release during a deploy, does not know the version column."""
    from datetime import datetime, timezone

    from sqlalchemy import text

    app = make_app(database=database, create_schema=False)
    zone = None if database == "sqlite" else timezone.utc
    at = datetime(2026, 5, 13, 12, tzinfo=zone)
    with app.app_context():
        upgrade()
        db.session.execute(text("INSERT INTO tenants (id, name, timezone, created_at) VALUES ('a', 'A', 'UTC', :at)"), {"at": at})
        db.session.execute(text("INSERT INTO patients (id, tenant_id, name, created_at) VALUES (1, 'a', 'P', :at)"), {"at": at})
        db.session.execute(text(
            "INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, created_at, updated_at) "
            "VALUES ('a', 1, :at, 30, 'pending', :at, :at)"), {"at": at})
        db.session.commit()
        assert db.session.execute(text("SELECT version FROM appointments")).scalar_one() == 1


def test_migrations_create_the_rollup_triggers_and_downgrade_removes_them(make_app, database):
    from datetime import datetime, timezone

    from flask_migrate import downgrade
    from sqlalchemy import text

    app = make_app(database=database, create_schema=False)
    zone = None if database == "sqlite" else timezone.utc
    at = datetime(2026, 5, 13, 12, 7, tzinfo=zone)
    insert = ("INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, created_at, "
              "updated_at) VALUES ('a', 1, :at, 30, 'pending', :at, :at)")
    with app.app_context():
        upgrade()
        db.session.execute(text("INSERT INTO tenants (id, name, timezone, created_at) VALUES ('a', 'A', 'UTC', :at)"), {"at": at})
        db.session.execute(text("INSERT INTO patients (id, tenant_id, name, created_at) VALUES (1, 'a', 'P', :at)"), {"at": at})
        db.session.execute(text(insert), {"at": at})
        db.session.commit()
        assert db.session.execute(text("SELECT n FROM appointment_counts")).scalars().all() == [1]
        db.session.remove()
        downgrade(revision="0004")
        with db.engine.begin() as conn:  # as psql would: this release's session expects 0006
            conn.execute(text(insert), {"at": at})
        assert db.session.execute(text("SELECT n FROM appointment_counts")).scalars().all() == [1]


def test_0006_gives_every_existing_tenant_a_version_and_the_schema_an_epoch(make_app, database):
    """Tenants made before the change record get a row (without one they would never be
    cached), and writes after it are recorded; downgrade removes triggers, functions and all."""
    from sqlalchemy import text

    app = make_app(database=database, create_schema=False)
    with app.app_context():
        upgrade(revision="0005")
        with db.engine.begin() as conn:
            for tenant in ("a", "b"):
                conn.execute(text("INSERT INTO tenants (id, name, timezone, created_at) "
                                  "VALUES (:t, :t, 'UTC', CURRENT_TIMESTAMP)"), {"t": tenant})
        upgrade()
        with db.engine.begin() as conn:
            before = dict(conn.execute(text("SELECT tenant_id, version FROM tenant_changes")).all())
            assert set(before) == {"a", "b"} and len(set(before.values())) == 2
            assert len(conn.execute(text("SELECT epoch FROM change_epoch")).scalar_one()) == 12
            conn.execute(text("UPDATE tenants SET name = 'A' WHERE id = 'a'"))
            assert conn.execute(text("SELECT version FROM tenant_changes WHERE tenant_id = 'a'")).scalar() > max(before.values())
        downgrade(revision="0005")
        assert "tenant_changes" not in inspect(db.engine).get_table_names()
        if database == "postgresql":
            with db.engine.connect() as conn:
                left = conn.execute(text(
                    "SELECT count(*) FROM pg_proc WHERE proname LIKE 'tenant_changes_%' "
                    "AND pronamespace = current_schema()::regnamespace")).scalar()
                assert conn.execute(text("SELECT to_regclass('tenant_change_versions')")).scalar() is None
            assert left == 0


def test_0007_makes_sqlite_ids_never_reused_and_keeps_rows_and_rollup_triggers(make_app):
    """The table rebuild that adds AUTOINCREMENT drops the old table and its triggers: they are
    made again, and the rows (with their counts) are kept."""
    from datetime import datetime

    from sqlalchemy import text

    app = make_app(database="sqlite", create_schema=False)
    at = datetime(2026, 5, 13, 12, 7)
    with app.app_context():
        upgrade(revision="0006")
        db.session.execute(text("INSERT INTO tenants (id, name, timezone, created_at) VALUES ('a', 'A', 'UTC', :at)"), {"at": at})
        db.session.execute(text("INSERT INTO patients (id, tenant_id, name, created_at) VALUES (1, 'a', 'P', :at)"), {"at": at})
        insert = text("INSERT INTO appointments (id, tenant_id, patient_id, starts_at, duration_min, status, created_at, "
                      "updated_at) VALUES (:id, 'a', 1, :at, 30, 'confirmed', :at, :at)")
        for appointment_id in (1, 2):
            db.session.execute(insert, {"id": appointment_id, "at": at})
        db.session.commit()
        upgrade()
        schema = dict(db.session.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
        assert "AUTOINCREMENT" in schema["appointments"] and "AUTOINCREMENT" in schema["patients"]
        assert "duration_min BETWEEN 1 AND 1440" in schema["appointments"]
        counted = text("SELECT coalesce(sum(n), 0) FROM appointment_counts")
        assert db.session.execute(text("SELECT count(*) FROM appointments")).scalar_one() == 2
        assert db.session.execute(counted).scalar_one() == 2
        db.session.execute(text("DELETE FROM appointments WHERE id = 2"))
        db.session.execute(text(
            "INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, created_at, updated_at) "
            "VALUES ('a', 1, :at, 30, 'confirmed', :at, :at)"), {"at": at})
        db.session.commit()
        assert db.session.execute(text("SELECT max(id) FROM appointments")).scalar_one() == 3
        assert db.session.execute(counted).scalar_one() == 2  # the triggers followed both
