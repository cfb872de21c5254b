"""A database that exists but is not migrated to this release: never, or by an older one.

The API answers 503 naming ``flask db upgrade`` (not a 500 per request), ``/readyz`` is 503 until
the schema is at this release's head or a later revision (a rolling deploy migrates first, and
must not make the old workers unready), and the app's ``flask`` commands stop in one line. The
``flask`` processes themselves (one line, no SQLite file created) are in test_refusals.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from alignwork.extensions import db
from tests.conftest import Builder, count_statements, token_for

# This release's head, read from its migration scripts as the app reads it (the newest file).
HEAD = sorted(path.name.split("_")[0] for path in
              (Path(__file__).resolve().parents[1] / "alignwork" / "migrations" / "versions").glob("0*.py"))[-1]

UPGRADE = "`flask db upgrade`"
STATS = "/api/v1/appointments/mega-stats"


def _api_calls(app):
    headers = {"Authorization": f"Bearer {token_for(app, 'acme')}"}
    client = app.test_client()
    return {
        "stats": client.get(STATS, headers=headers, auth=False),
        "tenant": client.get("/api/v1/tenant", headers=headers, auth=False),
        "patients": client.get("/api/v1/patients", headers=headers, auth=False),
        "new patient": client.post("/api/v1/patients", json={"name": "Ana"}, headers=headers, auth=False),
    }


def test_api_calls_answer_503_naming_the_upgrade_on_a_database_never_migrated(make_app, database):
    app = make_app(database=database, create_schema=False)
    for call, response in _api_calls(app).items():
        assert response.status_code == 503, (call, response.get_data(as_text=True))
        body = response.get_json()
        assert body["code"] == 503 and body["status"] == "Service Unavailable", call
        assert "never been migrated" in body["message"] and UPGRADE in body["message"], call
        assert "127.0.0.1" not in body["message"] and "sqlite" not in body["message"]  # no address


def test_readiness_waits_for_this_releases_head(make_app, database):
    app = make_app(database=database, create_schema=False)
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and UPGRADE in response.get_json()["message"]
    with app.app_context():
        upgrade(revision="0005")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert f"at schema revision 0005, behind this release's {HEAD}" in response.get_json()["message"]
    with app.app_context():
        upgrade()
    assert client.get("/readyz").get_json() == {"status": "ready", "database": "ok"}


def test_a_database_behind_is_a_503_where_the_release_needs_what_is_missing(make_app):
    app = make_app(create_schema=False)
    with app.app_context():
        upgrade(revision="0007")  # no idempotency_keys yet
    Builder(app).tenant("acme")
    response = app.test_client().post("/api/v1/patients", json={"name": "Ana", "tenantId": "acme"},
                                      headers={"Idempotency-Key": "k1"})
    assert response.status_code == 503
    assert f"behind this release's {HEAD}" in response.get_json()["message"]


def test_a_later_revision_is_ready_for_a_rolling_deploy(make_app, database):
    """The new release migrated first: a worker of this release started now is ready, and so
    is the one that was already serving."""
    serving = make_app(database=database, shared_as="deployment")
    assert serving.test_client().get("/readyz").status_code == 200
    with serving.app_context():
        db.session.execute(text("UPDATE alembic_version SET version_num = '0042_of_a_newer_release'"))
        db.session.commit()
    assert serving.test_client().get("/readyz").status_code == 200
    started = make_app(database=database, shared_as="deployment", create_schema=False)
    assert started.test_client().get("/readyz").status_code == 200
    result = started.test_cli_runner().invoke(args=["tenants", "list"])
    assert result.exit_code == 0, result.output


def test_readiness_once_ready_is_one_cheap_statement(make_app):
    app = make_app()
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    with count_statements(app) as seen:
        assert client.get("/readyz").status_code == 200
    assert seen == ["SELECT 1"]


@pytest.mark.parametrize("command", [["tenants", "list"], ["cache", "stats"], ["stats", "check-counts"],
                                     ["seed", "--appointments", "1"]])
def test_the_apps_commands_stop_in_one_line_naming_the_upgrade(make_app, database, command):
    app = make_app(database=database, create_schema=False)
    result = app.test_cli_runner().invoke(args=command)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: the database ") and lines[0].endswith(UPGRADE + ".")


def test_a_command_creates_no_sqlite_file(make_app, tmp_path):
    path = tmp_path / "never-made.sqlite"
    app = make_app(create_schema=False, SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}")
    result = app.test_cli_runner().invoke(args=["tenants", "list"])
    assert result.exit_code == 1
    assert result.output == f"Error: the database does not exist yet (sqlite:///{path}); run `flask db upgrade`.\n"
    assert not Path(path).exists()


def test_a_commands_help_needs_no_database(make_app):
    result = make_app(create_schema=False).test_cli_runner().invoke(args=["tenants", "list", "--help"])
    assert result.exit_code == 0 and "List tenants" in result.output
