"""The flask commands: tenants and seed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import time_machine
from sqlalchemy import func, select

from alignwork.extensions import db
from alignwork.models import Appointment, Patient, Tenant
from alignwork.services.seeding import DAYS_AFTER, DAYS_BEFORE

ROOT = Path(__file__).resolve().parents[1]


def test_tenants_create_and_list(app, runner):
    result = runner.invoke(args=["tenants", "create", "clinica-sol", "--timezone", "America/Sao_Paulo"])
    assert result.exit_code == 0, result.output
    assert "created tenant clinica-sol" in result.output
    runner.invoke(args=["tenants", "create", "demo", "--name", "Demo Clinic"])
    listing = runner.invoke(args=["tenants", "list"]).output.splitlines()
    assert listing == ["clinica-sol\tAmerica/Sao_Paulo\tclinica-sol", "demo\tAmerica/Recife\tDemo Clinic"]


def test_tenants_create_refuses_bad_input(app, runner):
    runner.invoke(args=["tenants", "create", "demo"])
    cases = {
        ("demo",): "already exists",
        ("Bad_Id",): "slug",
        ("ok", "--timezone", "Mars/Olympus"): "Unknown time zone",
    }
    for args, message in cases.items():
        result = runner.invoke(args=["tenants", "create", *args])
        assert result.exit_code != 0 and message in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Tenant)) == 1


def _appointments(app, tenant_id):
    with app.app_context():
        return [
            (a.patient_id, a.starts_at, a.duration_min, a.status)
            for a in db.session.scalars(
                select(Appointment).where(Appointment.tenant_id == tenant_id).order_by(Appointment.id)
            )
        ]


def test_seed_is_deterministic_and_spread_over_the_window(make_app):
    first, second = make_app(), make_app()
    for app in (first, second):
        # The window is anchored on the tenant's local date: both seeds see the same one.
        with time_machine.travel(datetime(2026, 5, 13, 14, tzinfo=timezone.utc), tick=False):
            result = app.test_cli_runner().invoke(
                args=["seed", "--tenant", "demo", "--appointments", "500", "--seed", "7"])
        assert result.exit_code == 0, result.output
        assert "inserted 500 appointments for demo" in result.output
    rows = _appointments(first, "demo")
    assert len(rows) == 500 and rows == _appointments(second, "demo")
    starts = [r[1] for r in rows]
    assert max(starts) - min(starts) > timedelta(days=DAYS_BEFORE + DAYS_AFTER - 10)
    assert {r[3] for r in rows} == {"pending", "confirmed", "cancelled"}
    with first.app_context():
        assert db.session.get(Tenant, "demo").timezone == "America/Recife"
        assert db.session.scalar(select(func.count()).select_from(Patient)) >= 5


def test_seed_if_empty_leaves_a_seeded_tenant_alone(app, runner):
    runner.invoke(args=["seed", "--tenant", "demo", "--appointments", "50"])
    result = runner.invoke(args=["seed", "--tenant", "demo", "--appointments", "50", "--if-empty"])
    assert "already has appointments" in result.output
    assert len(_appointments(app, "demo")) == 50


def test_flask_app_option_finds_the_factory(tmp_path):
    env = {**os.environ, "ALIGNWORK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/cli.sqlite"}
    env.pop("FLASK_APP", None)
    flask = [sys.executable, "-m", "flask", "--app", "alignwork"]
    upgrade = subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert upgrade.returncode == 0, upgrade.stderr
    subprocess.run([*flask, "tenants", "create", "demo"], cwd=ROOT, env=env, check=True, capture_output=True)
    listing = subprocess.run([*flask, "tenants", "list"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert listing.stdout.strip() == "demo\tAmerica/Recife\tdemo"


def test_tenants_rename_reaches_the_dashboards_next_poll(make_app, cache_backend):
    """A rename is a change to the tenant like any other: its commit rewrites the cached record
    the tenant endpoint (the dashboard's heading) answers from, on either cache."""
    from tests.conftest import token_for

    app = make_app(cache=cache_backend)
    runner = app.test_cli_runner()
    runner.invoke(args=["tenants", "create", "demo"])
    headers = {"Authorization": f"Bearer {token_for(app, 'demo')}"}
    client = app.test_client()
    assert client.get("/api/v1/tenant", headers=headers).get_json()["name"] == "demo"  # now cached

    result = runner.invoke(args=["tenants", "rename", "demo", "  Clínica Boa Vista "])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("renamed demo to Clínica Boa Vista")
    assert client.get("/api/v1/tenant", headers=headers).get_json()["name"] == "Clínica Boa Vista"
    assert runner.invoke(args=["tenants", "list"]).output == "demo\tAmerica/Recife\tClínica Boa Vista\n"


def test_tenants_rename_refuses_bad_input(app, runner):
    runner.invoke(args=["tenants", "create", "demo", "--name", "Clínica Boa Vista"])
    cases = {
        ("dmeo", "Clínica Sol"): "Error: Tenant 'dmeo' not found.",
        ("demo", "  "): "Error: A tenant's name must be one line of printable text.",
        ("demo", "Clínica\nSol"): "Error: A tenant's name must be one line of printable text.",
        ("demo", "x" * 201): "Error: A tenant's name must be at most 200 characters.",
    }
    for args, message in cases.items():
        result = runner.invoke(args=["tenants", "rename", *args])
        assert result.exit_code == 1 and result.output == message + "\n", result.output
    assert runner.invoke(args=["tenants", "list"]).output == "demo\tAmerica/Recife\tClínica Boa Vista\n"


def test_seed_names_the_tenant_it_creates(app, runner):
    result = runner.invoke(args=["seed", "--tenant", "demo", "--name", "Clínica Boa Vista", "--appointments", "5"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.get(Tenant, "demo").name == "Clínica Boa Vista"
