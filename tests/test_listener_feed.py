"""The listener's idle cost is flat in the number of tenants: with 100,000 tenants made by SQL,
on SQLite and PostgreSQL, a tick after the catch-up reads no row of the change record, and a
tick after a change reads that change. A commit that drew its version before another's and
commits after it (a late commit) still reaches the cache."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from alignwork.cache.backend import parse_generation, stats_backend
from alignwork.cache.keys import generation_key
from alignwork.extensions import db
from alignwork.services.changes import catch_up, record
from alignwork.services.changes.listener import ChangeListener
from tests.conftest import Builder

TENANTS = 100_000

_BULK = {
    "postgresql": "INSERT INTO tenants (id, name, timezone, created_at) "
                  "SELECT 'bulk' || lpad(i::text, 6, '0'), 'Bulk', 'UTC', now() FROM generate_series(1, :n) AS i",
    "sqlite": "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) "
              "INSERT INTO tenants (id, name, timezone, created_at) "
              "SELECT 'bulk' || printf('%06d', i), 'Bulk', 'UTC', CURRENT_TIMESTAMP FROM s",
}


class RowCount:
    """The rows of the change record a listener's looks and reads returned, and the statements
    it sent (every engine's: the listener's own is made on its first tick)."""

    def __init__(self, monkeypatch):
        self.rows = self.statements = 0
        for name in ("versions", "changed_since"):
            monkeypatch.setattr(record, name, self._counting(getattr(record, name), lambda found: len(found.versions)))
        monkeypatch.setattr(record, "read", self._counting(record.read, lambda found: len(found[1])))
        event.listen(sa.engine.Engine, "before_cursor_execute", self._statement)

    def _counting(self, function, size):
        def counted(*args, **kwargs):
            found = function(*args, **kwargs)
            self.rows += size(found)
            return found
        return counted

    def _statement(self, *args) -> None:
        self.statements += 1

    def close(self) -> None:
        event.remove(sa.engine.Engine, "before_cursor_execute", self._statement)

    def reset(self) -> tuple[int, int]:
        found, self.rows, self.statements = (self.rows, self.statements), 0, 0
        return found


def _tick(app, listener):
    with app.app_context():
        return listener.tick()


@pytest.fixture
def counted(monkeypatch):
    counter = RowCount(monkeypatch)
    yield counter
    counter.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_an_idle_tick_reads_no_row_among_100000_tenants(make_app, database, counted, capsys):
    app = make_app(database=database, cache="redis")
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text(_BULK[database]), {"n": TENANTS})
    listener = ChangeListener(app)
    try:
        started = time.perf_counter()
        first = _tick(app, listener)  # the catch-up: every tenant, read and written once
        catch_up_seconds = time.perf_counter() - started
        assert first.leading and first.compared == TENANTS
        counted.reset()
        idle = []
        for _ in range(10):
            started = time.perf_counter()
            result = _tick(app, listener)
            idle.append((time.perf_counter() - started, *counted.reset(), result))
        assert all(rows == 0 and r.compared == 0 and r.written == 0 for _, rows, _, r in idle), idle
        assert all(statements == 1 for _, _, statements, _ in idle), idle  # the one look
        assert all(r.rechecked == 0 for *_, r in idle)  # nothing changed, nothing compared

        with app.app_context(), db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE tenants SET name = 'Renamed' WHERE id IN ('bulk000007', 'bulk099999')"))
        changed = _tick(app, listener)
        rows, _ = counted.reset()
        assert (changed.compared, changed.written) == (2, 2)
        assert rows == 4  # two in the look, two in the read of their records
        with app.app_context():
            held = stats_backend().fetch(generation_key("bulk099999"))[0]
            assert parse_generation(held)[1] == record.versions().versions["bulk099999"]
    finally:
        listener.close()
    times = sorted(seconds for seconds, *_ in idle)
    with capsys.disabled():
        print(f"\n{database}, {TENANTS} tenants: catch-up {catch_up_seconds:.1f} s; idle tick median "
              f"{times[len(times) // 2] * 1000:.1f} ms, rows 0")


def test_a_late_commit_with_a_lower_version_reaches_the_cache(make_app, counted):
    """A transaction draws its version, another draws a higher one and commits, a tick runs,
    then the first commits: the next tick must still bring it (a version watermark would not)."""
    app = make_app(database="postgresql", cache="redis")
    Builder(app).tenant("early")
    Builder(app).tenant("late")
    listener = ChangeListener(app)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    engine = sa.create_engine(url, connect_args=app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"])
    try:
        _tick(app, listener)
        with engine.connect() as held:
            held.execute(sa.text("UPDATE tenants SET name = 'Late' WHERE id = 'late'"))
            drawn = held.execute(sa.text("SELECT version FROM tenant_changes WHERE tenant_id = 'late'")).scalar()
            with engine.begin() as other:
                other.execute(sa.text("UPDATE tenants SET name = 'Early' WHERE id = 'early'"))
            with app.app_context():
                assert record.versions().versions["early"] > drawn
            assert _tick(app, listener).written == 1  # "early"
            held.commit()
        assert _tick(app, listener).written == 1  # "late", with its lower version
        with app.app_context():
            held_generation = stats_backend().fetch(generation_key("late"))[0]
        assert parse_generation(held_generation)[1] == drawn
        counted.reset()
        assert _tick(app, listener).written == 0
        assert counted.reset()[0] == 0
    finally:
        listener.close()
        engine.dispose()


def test_a_changed_tenant_is_compared_once_more_after_the_recheck_bound(make_app, monkeypatch):
    """A generation written back older after the listener confirmed it (an eviction racing a
    slow writer) is corrected by the second look, which only changed tenants get."""
    monkeypatch.setattr(catch_up, "RECHECK_SECONDS", 0.0)
    app = make_app(cache="redis")
    Builder(app).tenant("acme")
    listener = ChangeListener(app)
    try:
        _tick(app, listener)  # the catch-up
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE tenants SET name = 'Renamed' WHERE id = 'acme'"))
        assert _tick(app, listener).written == 1
        with app.app_context():
            version = record.versions().versions["acme"]
            epoch = parse_generation(stats_backend().fetch(generation_key("acme"))[0])[0]
            stats_backend().delete(generation_key("acme"))  # evicted, then a slow writer's older one
            stats_backend().advance(generation_key("acme"), "tenant-record-unused", epoch, version - 1, None, 60, 60)
        again = _tick(app, listener)
        assert (again.rechecked, again.written) == (1, 1)
        with app.app_context():
            assert parse_generation(stats_backend().fetch(generation_key("acme"))[0])[1] == version
        assert _tick(app, listener).rechecked == 0  # once
    finally:
        listener.close()
