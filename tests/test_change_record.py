"""The database's change record and the listener that applies it, in one process.

Writes here go through a connection of their own, outside the app's session, as psql or another
service would make them: the app's after-commit path never sees them, so only the triggers and
the listener can bring them to the cache.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import time_machine

from alignwork.cache.keys import generation_key, tenant_record_key
from alignwork.extensions import cache, db
from alignwork.models import ChangeEpoch, TenantChange
from alignwork.services.changes import generations, record
from alignwork.services.stats import answer as stats_answer
from alignwork.services.changes.listener import ChangeListener, TickResult
from alignwork.services.seeding import seed_tenant
from tests.conftest import Builder, token_for

NOON = datetime(2026, 5, 13, 15, tzinfo=timezone.utc)  # midday in Recife
SOON = "2026-05-13 18:00:00"


@pytest.fixture(autouse=True)
def _midday():
    with time_machine.travel(NOON, tick=True):
        yield


@pytest.fixture(params=[("sqlite", "simple"), ("postgresql", "simple"), ("sqlite", "redis"),
                        ("postgresql", "redis")], ids=lambda p: "-".join(p))
def setup(make_app, request):
    database, backend = request.param
    app = make_app(database=database, cache=backend)
    builder = Builder(app)
    builder.tenant("acme")
    builder.tenant("other")
    patient = builder.patient("acme")
    listener = ChangeListener(app)
    yield app, patient, listener
    listener.close()


def psql(app, statement: str, **params) -> None:
    """A statement on a connection of its own, committed: as psql would run it."""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def versions(app) -> dict[str, int]:
    with app.app_context():
        return record.versions().versions


def tick(app, listener):
    with app.app_context():
        return listener.tick()


def poll(app, tenant="acme"):
    response = app.test_client().get("/api/v1/appointments/mega-stats?tz=America/Recife",
                                     headers={"Authorization": f"Bearer {token_for(app, tenant)}"})
    return response.headers.get("X-Cache"), response.get_json()


def insert_appointment(app, patient, status="confirmed", tenant="acme"):
    psql(app, "INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, "
              "created_at, updated_at, version) VALUES (:t, :p, :s, 30, :st, :s, :s, 1)",
         t=tenant, p=patient, s=SOON, st=status)


WRITES = {
    "insert": lambda app, patient: insert_appointment(app, patient),
    "update": lambda app, patient: psql(app, "UPDATE appointments SET status = 'pending'"),
    "delete": lambda app, patient: psql(app, "DELETE FROM appointments"),
    "counts edit": lambda app, patient: psql(app, "UPDATE appointment_counts SET n = n + 7"),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_kind_of_write_outside_the_app_reaches_the_cache_on_the_next_tick(setup, write):
    app, patient, listener = setup
    if write != "insert":
        insert_appointment(app, patient)
    tick(app, listener)
    assert poll(app)[0] == "MISS"
    before = poll(app)
    assert before[0] == "HIT"
    WRITES[write](app, patient)
    assert poll(app) == before  # the app cannot know yet
    assert tick(app, listener).written == 1  # acme only: "other" did not change
    outcome, body = poll(app)
    assert outcome == "MISS" and body != before[1]


def test_a_write_that_cannot_change_the_stats_costs_no_invalidation(setup):
    app, patient, listener = setup
    insert_appointment(app, patient, status="cancelled")
    tick(app, listener)
    poll(app)
    psql(app, "UPDATE appointments SET starts_at = '2026-05-14 18:00:00'")  # still cancelled
    assert tick(app, listener).written == 0
    assert poll(app)[0] == "HIT"


def test_versions_only_grow_and_a_recreated_tenant_never_repeats_one(setup):
    app, patient, listener = setup
    first = versions(app)["other"]
    psql(app, "UPDATE tenants SET name = 'Other clinic' WHERE id = 'other'")
    second = versions(app)["other"]
    psql(app, "DELETE FROM tenants WHERE id = 'other'")
    third = versions(app)["other"]
    psql(app, "INSERT INTO tenants (id, name, timezone, created_at) VALUES ('other', 'x', 'UTC', :now)",
         now=SOON)
    assert first < second < third < versions(app)["other"]


def test_a_tenant_change_rewrites_its_record(setup):
    """A psql revocation (or zone change) is a change like any other: the listener rewrites the
    record every request authenticates against."""
    app, patient, listener = setup
    tick(app, listener)
    assert poll(app)[0] == "MISS"
    cut_off = datetime.now(timezone.utc) + timedelta(seconds=5)  # after any token issued below
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        cut_off = cut_off.replace(tzinfo=None).isoformat(" ")  # SQLite holds naive UTC text
    psql(app, "UPDATE tenants SET tokens_revoked_at = :cut_off WHERE id = 'acme'", cut_off=cut_off)
    assert tick(app, listener).written == 1
    response = app.test_client().get("/api/v1/appointments/mega-stats",
                                     headers={"Authorization": f"Bearer {token_for(app, 'acme')}"})
    assert response.status_code == 401


def test_the_apps_own_write_is_applied_once_and_computed_once(setup):
    """The after-commit path and the listener write the same generation: the listener finds
    the cache up to date and writes nothing, and the write costs one computation."""
    app, patient, listener = setup
    tick(app, listener)
    poll(app)
    Builder(app).appointments("acme", [(datetime(2026, 5, 13, 18, tzinfo=timezone.utc), "confirmed")],
                              patient_id=patient)
    assert poll(app)[0] == "MISS"
    assert tick(app, listener).written == 0
    assert poll(app)[0] == "HIT"


def test_a_catch_up_that_finds_nothing_changed_writes_nothing(setup):
    app, patient, listener = setup
    assert tick(app, listener) == TickResult(True, 2, 0)  # the app's commits had written both already
    assert tick(app, listener).compared == 0
    with app.app_context():
        cache.clear()  # lost generations are read again from the database when needed
    listener.catch_up.forget()  # what a new identity (a restarted Redis) does: tested under gunicorn
    assert tick(app, listener).written == 2
    listener.close()
    fresh = ChangeListener(app)  # a restart: compares everything, writes nothing
    result = tick(app, fresh)
    fresh.close()
    assert (result.compared, result.written) == (2, 0)


def test_a_generation_is_never_lowered(setup):
    app, patient, listener = setup
    with app.app_context():
        backend = cache.cache
        key, record = generation_key("acme"), tenant_record_key("acme")
        assert backend.advance(key, record, "e1", 5, None, 60, 60) == "e1:5"
        assert backend.advance(key, record, "e1", 4, None, 60, 60) == "e1:5"
        assert backend.advance(key, record, "e1", 6, None, 60, 60) == "e1:6"
        assert backend.advance(key, record, "e2", 1, None, 60, 60) == "e2:1"  # a new epoch wins


def test_a_new_epoch_replaces_every_generation(setup):
    app, patient, listener = setup
    tick(app, listener)
    assert poll(app)[0] == "MISS"
    assert app.test_cli_runner().invoke(args=["stats", "new-epoch"]).exit_code == 0
    assert tick(app, listener).written == 2
    assert poll(app)[0] == "MISS"


def test_a_lost_generation_is_read_again_from_the_database_and_keeps_its_entries(setup):
    """Eviction or a flushed Redis: the generation comes back with the same value, so entries
    that are still right stay served."""
    app, patient, listener = setup
    tick(app, listener)
    poll(app)
    with app.app_context():
        cache.cache.delete(generation_key("acme"))
        assert stats_answer.get_stats("acme", None, None).outcome.value == "HIT"


def test_the_sqlite_seeder_records_its_tenants_although_it_drops_the_row_triggers(make_app):
    app = make_app()
    Builder(app).tenant("acme")
    before = versions(app)["acme"]
    with app.app_context():
        seed_tenant("acme", appointments=50)
    assert versions(app)["acme"] > before


def test_truncate_records_every_tenant(make_app):
    app = make_app(database="postgresql")
    Builder(app).tenant("acme")
    Builder(app).tenant("other")
    before = versions(app)
    psql(app, "TRUNCATE appointment_counts")
    after = versions(app)
    assert all(after[t] > before[t] for t in ("acme", "other"))


def test_with_a_shared_cache_on_postgresql_one_listener_leads_and_another_takes_over(make_app):
    app = make_app(database="postgresql", cache="redis")
    Builder(app).tenant("acme")
    first, second = ChangeListener(app), ChangeListener(app)
    assert tick(app, first).leading and not tick(app, second).leading
    first.close()  # its connection ends, as when its process dies
    deadline = time.monotonic() + 5  # the server releases the lock once it sees the connection end
    while not tick(app, second).leading and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second.election.leading
    second.close()


def test_a_listener_elects_on_its_own_apps_cache_whatever_context_is_pushed(make_app):
    """Built while another app's context is active, or with none (as under gunicorn), in a
    process that made a second app (a test, a shell), the listener still elects on its own app's
    shared cache: with the other app's per-process cache it would believe itself alone, and lead
    beside the elected one."""
    shared, other = make_app(cache="redis"), make_app()  # the last app made: Flask-Caching's default
    with other.app_context():
        within = ChangeListener(shared)
    outside = ChangeListener(shared)
    assert (within.election.contested, outside.election.contested) == (True, True)
    within.close()
    outside.close()


def test_every_tenant_has_a_row_and_the_epoch_is_set(app):
    Builder(app).tenant("acme")
    with app.app_context():
        assert db.session.get(TenantChange, "acme").version > 0
        assert len(db.session.get(ChangeEpoch, 1).epoch) == 12
        assert generations.advance("acme")["acme"].endswith(f":{db.session.get(TenantChange, 'acme').version}")


def test_versions_only_grow_when_a_writer_waits_behind_a_longer_transaction(make_app):
    """A transaction writes two of a tenant's counts in two statements while another writer
    changes a third: the second waits for the tenant's change row, and its version must come out
    higher than both of the first one's, whatever it drew before waiting."""
    app = make_app(database="postgresql")
    Builder(app).tenant("acme")
    for hour in (10, 11, 12):
        psql(app, "INSERT INTO appointment_counts (tenant_id, bucket, status, n) VALUES "
                  "('acme', :b, 'confirmed', 1)", b=datetime(2026, 5, 13, hour, tzinfo=timezone.utc))
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["options"]
    engine = sa.create_engine(url, connect_args={"options": options})
    bump = "UPDATE appointment_counts SET n = n + 1 WHERE tenant_id = 'acme' AND bucket = :b"
    with engine.connect() as first:
        first.execute(sa.text(bump), {"b": datetime(2026, 5, 13, 10, tzinfo=timezone.utc)})
        waiter = threading.Thread(target=_run_on, args=(engine, bump, datetime(2026, 5, 13, 11, tzinfo=timezone.utc)))
        waiter.start()
        time.sleep(0.5)  # the waiter's trigger has drawn a version and waits for acme's row
        first.execute(sa.text(bump), {"b": datetime(2026, 5, 13, 12, tzinfo=timezone.utc)})
        held = first.execute(sa.text("SELECT version FROM tenant_changes WHERE tenant_id = 'acme'")).scalar()
        first.commit()
    waiter.join(10)
    engine.dispose()
    assert versions(app)["acme"] > held


def _run_on(engine, statement: str, bucket) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement), {"b": bucket})


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_database_that_stays_away_is_logged_once_not_every_tick(make_app, database, caplog):
    """An unmigrated schema fails every tick the same way: one warning, then one line when the
    database answers again."""
    app = make_app(database=database, create_schema=False)
    listener = ChangeListener(app)
    try:
        with caplog.at_level(logging.INFO, logger="alignwork.services.changes.listener"):
            for _ in range(5):
                assert tick(app, listener).leading is False
            with app.app_context():
                db.create_all()
            assert tick(app, listener).leading is True
    finally:
        listener.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "alignwork.services.changes.listener"]
    lost = [line for line in lines if "lost the database" in line]
    assert len(lost) == 1, lines
    assert any("reached the database again" in line for line in lines)
