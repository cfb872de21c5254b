"""The 15-minute rollup behind mega-stats: what it serves, rebuilding and checking it, migrating it.

That the triggers follow every kind of writer is proven in ``test_rollup_sql.py``."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask_migrate import upgrade
from sqlalchemy import text

from alignwork.extensions import db
from alignwork.models import Appointment
from alignwork.services import appointments as service
from alignwork.services.exceptions import Conflict
from alignwork.services.rollup import rebuild_counts
from alignwork.services.stats.query import compute_stats, compute_stats_from_appointments
from tests.conftest import Builder, count_statements, counted_appointments, rollup_counts, utc

DAY = date(2026, 5, 13)


def _rollup(app):
    with app.app_context():
        return rollup_counts()


def _expected(app):
    with app.app_context():
        return counted_appointments()


def test_a_failed_write_leaves_the_rollup_alone(app, build):
    build.tenant("acme")
    patient = build.patient("acme")
    [kept] = build.appointments("acme", [(utc(2026, 5, 13, 12), "confirmed")], patient_id=patient)
    before = _rollup(app)
    with app.app_context():
        db.session.add(Appointment(tenant_id="acme", patient_id=patient, starts_at=utc(2026, 5, 13, 13),
                                   duration_min=99999, status="confirmed"))  # violates the CHECK
        try:
            db.session.commit()
        except Exception:  # noqa: BLE001 - the point is what is left afterwards
            db.session.rollback()
    assert _rollup(app) == before


def test_off_grid_boundaries_fall_back_to_the_appointments(app, build):
    """São Paulo kept local mean time (-03:06:28) until 1914: its midnights are off the grid."""
    build.tenant("acme", timezone="America/Sao_Paulo")
    build.appointments("acme", [(datetime(1913, 5, 13, 3, 6, 27, tzinfo=timezone.utc), "confirmed"),
                                (datetime(1913, 5, 13, 3, 6, 28, tzinfo=timezone.utc), "confirmed")])
    with count_statements(app) as seen, app.app_context():
        result = compute_stats("acme", ZoneInfo("America/Sao_Paulo"), date(1913, 5, 13))
    assert result["today"]["confirmed"] == 1 and result["month"]["confirmed"] == 2
    assert len(seen) == 1 and "appointment_counts" not in seen[0]


def test_on_grid_stats_read_the_rollup_only(app, build):
    build.tenant("acme")
    with count_statements(app) as seen, app.app_context():
        compute_stats("acme", ZoneInfo("Asia/Kathmandu"), DAY)
    assert len(seen) == 1 and "appointment_counts" in seen[0] and "FROM appointments " not in seen[0]


def _corrupt(app, tenant: str) -> None:
    """Edit the rollup by hand, as a bad restore or a stray UPDATE in psql would: on a connection
    of its own, which the app's session (and so its cache) never hears of."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text("UPDATE appointment_counts SET n = n + 2 WHERE tenant_id = :t AND status = 'pending'"),
                           {"t": tenant})
        connection.execute(text("DELETE FROM appointment_counts WHERE tenant_id = :t AND status = 'confirmed'"),
                           {"t": tenant})


def test_check_counts_finds_drift_and_rebuild_counts_repairs_it(app, build, runner):
    for tenant in ("acme", "beta"):
        build.tenant(tenant)
        build.appointments(tenant, [(utc(2026, 5, 13, 12), "confirmed"), (utc(2026, 5, 14, 12), "pending"),
                                    (utc(2026, 5, 14, 12, 5), "pending"), (utc(2026, 5, 15), "cancelled")])
    result = runner.invoke(args=["stats", "check-counts"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("counts exact; checked in ") and result.output.endswith(" s\n")

    _corrupt(app, "acme")
    result = runner.invoke(args=["stats", "check-counts"])
    assert result.exit_code == 1
    assert result.output.splitlines()[:2] == [
        "acme: confirmed -1 in 1 bucket, pending +2 in 1 bucket (rollup minus appointments)",
        "1 tenant(s) differ; checked in " + result.output.splitlines()[1].split(" checked in ")[1],
    ]
    assert "beta" not in result.output
    assert runner.invoke(args=["stats", "check-counts", "--tenant", "beta"]).exit_code == 0
    assert runner.invoke(args=["stats", "check-counts", "--tenant", "acme"]).exit_code == 1

    result = runner.invoke(args=["stats", "rebuild-counts", "--tenant", "acme"])
    assert result.exit_code == 0 and "rebuilt counts from 3 appointments" in result.output
    assert runner.invoke(args=["stats", "check-counts"]).exit_code == 0
    assert _rollup(app) == _expected(app)

    _corrupt(app, "beta")
    result = runner.invoke(args=["stats", "rebuild-counts"])
    assert result.exit_code == 0 and "rebuilt counts from 6 appointments" in result.output
    assert runner.invoke(args=["stats", "check-counts"]).exit_code == 0
    with app.app_context():
        assert rebuild_counts("acme") == 3
        assert db.session.scalar(text("SELECT count(*) FROM appointment_counts WHERE n = 0")) == 0


@pytest.mark.parametrize("command", ["check-counts", "rebuild-counts"])
def test_an_unknown_tenant_is_an_error_not_exact_counts(app, build, runner, command):
    """A typo in a nightly ``check-counts --tenant`` must fail the night it is made, not pass
    for ever; the rollup is left alone."""
    build.tenant("acme")
    build.appointments("acme", [(utc(2026, 5, 13, 12), "confirmed")])
    result = runner.invoke(args=["stats", command, "--tenant", "acem"])
    assert result.exit_code == 1
    assert result.output == "Error: Tenant 'acem' not found.\n"
    assert _rollup(app) == _expected(app)


def test_rebuild_counts_invalidates_the_cached_stats(app, build, runner):
    build.tenant("acme")
    build.appointments("acme", [(utc(2026, 5, 13, 12), "confirmed")])
    client = app.test_client()
    url = "/api/v1/appointments/mega-stats?tenantId=acme"
    with time_machine.travel(utc(2026, 5, 13, 15), tick=False):
        assert client.get(url).get_json()["today"]["confirmed"] == 1
        _corrupt(app, "acme")
        assert client.get(url).headers["X-Cache"] == "HIT"
        assert runner.invoke(args=["stats", "rebuild-counts", "--tenant", "acme"]).exit_code == 0
        response = client.get(url)
    assert response.headers["X-Cache"] == "MISS" and response.get_json()["today"]["confirmed"] == 1


def test_seed_keeps_the_rollup_in_step_and_the_triggers_in_place(app, runner):
    runner.invoke(args=["seed", "--tenant", "demo", "--appointments", "3000"])
    runner.invoke(args=["seed", "--tenant", "demo", "--appointments", "500", "--seed", "2"])  # adds to it
    assert _rollup(app) == _expected(app)
    with app.app_context():
        today = datetime.now(timezone.utc).date()
        assert compute_stats("demo", ZoneInfo("America/Recife"), today) == \
            compute_stats_from_appointments("demo", ZoneInfo("America/Recife"), today)
        db.session.execute(text("UPDATE appointments SET status = 'cancelled' WHERE id % 3 = 0"))
        db.session.commit()
    assert _rollup(app) == _expected(app)


def test_migration_backfills_existing_appointments(make_app, database):
    app = make_app(database=database, create_schema=False)
    # As each backend stores them: naive UTC text on SQLite, timestamptz on PostgreSQL.
    zone = None if database == "sqlite" else timezone.utc
    with app.app_context():
        upgrade(revision="0002")
        # On a connection of its own: this release's session expects the current schema.
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO tenants (id, name, timezone, created_at) "
                              "VALUES ('acme', 'Acme', 'America/Recife', :now)"),
                         {"now": datetime(2026, 1, 1, tzinfo=zone)})
            conn.execute(text("INSERT INTO patients (id, tenant_id, name, created_at) "
                              "VALUES (1, 'acme', 'Ana', :now)"), {"now": datetime(2026, 1, 1, tzinfo=zone)})
            for i, (minutes, status) in enumerate([(0, "confirmed"), (14, "confirmed"), (15, "pending"),
                                                   (20, "cancelled")]):
                conn.execute(text(
                    "INSERT INTO appointments (id, tenant_id, patient_id, starts_at, duration_min, status, "
                    "created_at, updated_at) VALUES (:id, 'acme', 1, :at, 30, :status, :at, :at)"),
                    {"id": i + 1, "status": status,
                     "at": datetime(2026, 5, 13, 12, tzinfo=zone) + timedelta(minutes=minutes)})
        upgrade()
    assert _rollup(app) == {("acme", utc(2026, 5, 13, 12), "confirmed"): 2,
                            ("acme", utc(2026, 5, 13, 12, 15), "pending"): 1}


# -- racing writes: the second one, based on a stale read, is refused --------------------------


def _race(app, first_change, second_change):
    """Request A reads the appointment, request B changes it and commits, then A writes."""
    build = Builder(app)
    build.tenant("acme")
    [appointment_id] = build.appointments("acme", [(utc(2026, 5, 13, 12), "pending")])
    with app.app_context():
        in_flight = service.get_appointment("acme", appointment_id)  # A has read it ...
        with app.app_context():                                      # ... B commits a change ...
            first_change(appointment_id)
        try:
            second_change(appointment_id)                            # ... then A writes
        except Conflict as exc:
            return exc
        finally:
            del in_flight
    return None


@pytest.mark.parametrize("first,second", [
    ("confirm", "cancel"), ("confirm", "delete"), ("delete", "cancel"), ("delete", "delete"),
])
def test_a_write_based_on_a_stale_read_is_a_conflict_and_counts_stay_exact(app, first, second):
    actions = {
        "confirm": lambda i: service.update_appointment("acme", i, {"status": "confirmed"}),
        "cancel": lambda i: service.update_appointment("acme", i, {"status": "cancelled"}),
        "delete": lambda i: service.delete_appointment("acme", i),
    }
    conflict = _race(app, actions[first], actions[second])
    assert conflict is not None and "changed or deleted meanwhile" in conflict.message
    assert _rollup(app) == _expected(app)
    with app.app_context():
        assert compute_stats("acme", ZoneInfo("America/Recife"), DAY) == \
            compute_stats_from_appointments("acme", ZoneInfo("America/Recife"), DAY)


def test_rebuild_counts_gives_up_rather_than_stall_writers_behind_a_long_transaction(make_app, monkeypatch):
    from alignwork.services import rollup

    app = make_app(database="postgresql")
    build = Builder(app)
    build.tenant("acme")
    build.appointments("acme", [(utc(2026, 5, 13, 12), "confirmed")])
    monkeypatch.setattr(rollup, "LOCK_TIMEOUT_SECONDS", 1)
    with app.app_context():
        writer = db.engine.connect()
        try:
            writer.execute(text("UPDATE appointments SET duration_min = 45"))  # left open
            result = app.test_cli_runner().invoke(args=["stats", "rebuild-counts"])
        finally:
            writer.rollback()
            writer.close()
    assert result.exit_code == 1 and "Could not lock the appointments within 1 s" in result.output
    assert _rollup(app) == _expected(app)
