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
