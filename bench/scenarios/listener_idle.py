"""10. The change listener at rest: what a tick costs when nothing changes, by number of tenants.

For each database and size, a scratch database gets that many tenants by SQL (the triggers give
each its change record), the shared cache gets their generations (as a catch-up would have
written them, in bulk, so that a million tenants take seconds and not the catch-up's one write
each), and a listener in this process catches up (a comparison only), takes the catch-up's
second look at every tenant at once rather than 30 s later (``catch_up.RECHECK_SECONDS``; both
are timed and reported), and then ticks at its interval for ``listener_seconds`` with nothing
changing. Reported: a tick's median and p99 time, the rows of the change record an idle tick
reads, and the CPU the listener's thread and its PostgreSQL backend used, as a share of one
core.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from pathlib import Path

import redis
import sqlalchemy as sa

from ..databases import Database, postgres_scratch, sqlite
from . import Context

SCENARIO = "10 listener at rest"
TICK_MS = 5.0  # the targets, at 100,000 tenants
CPU_PERCENT = 1.0
JUDGED_AT = 100_000

_BULK = {
    "postgresql": "INSERT INTO tenants (id, name, timezone, created_at) SELECT 'idle' || lpad(i::text, 7, '0'), "
                  "'Idle', 'UTC', now() FROM generate_series(1, :n) AS i",
    "sqlite": "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) "
              "INSERT INTO tenants (id, name, timezone, created_at) "
              "SELECT 'idle' || printf('%07d', i), 'Idle', 'UTC', CURRENT_TIMESTAMP FROM s",
}


def run(ctx: Context) -> None:
    plan = ctx.plan
    if "redis" not in plan.caches:
        ctx.report.notes.append("Listener at rest not measured: it needs RedisCache (run without --cache simple).")
        return
    for kind in plan.databases:
        for size in plan.listener_sizes:
            with _database(ctx, kind, size) as database:
                _measure(ctx, database, size)


@contextlib.contextmanager
def _database(ctx: Context, kind: str, size: int):
    if kind == "sqlite":
        database = sqlite(ctx.stack.run_dir, f"listener-{size}")
        yield database
        Path(database.url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        return
    with postgres_scratch(ctx.plan.postgres_url) as database:
        ctx.stack.log.hide(database.url, "postgresql+psycopg://$POSTGRES/$SCRATCH_DATABASE")
        yield database


def _measure(ctx: Context, database: Database, size: int) -> None:
    from alignwork import create_app
    from alignwork.extensions import db
    from alignwork.services.changes import catch_up, record
    from alignwork.services.changes.listener import ChangeListener

    prefix = f"{ctx.stack.key_prefix}listener-{size}:"
    app = create_app({"SQLALCHEMY_DATABASE_URI": database.url, "SECRET_KEY": ctx.stack.secret_key,
                      "CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": ctx.stack.redis_url, "CACHE_KEY_PREFIX": prefix})
    client = redis.Redis.from_url(ctx.stack.redis_url)
    listener = ChangeListener(app)
    label = f"{database.label}, {size:,} tenants"
    try:
        with app.app_context():
            db.create_all()
            with db.engine.begin() as conn:
                conn.execute(sa.text(_BULK[database.kind]), {"n": size})
            found = record.versions()
        _prefill(client, prefix, found)
        if database.kind == "postgresql":
            with contextlib.suppress(Exception):
                with sa.create_engine(database.url, isolation_level="AUTOCOMMIT").connect() as conn:
                    conn.execute(sa.text("VACUUM ANALYZE"))
        recheck_seconds, catch_up.RECHECK_SECONDS = catch_up.RECHECK_SECONDS, 0.0
        try:
            started = time.perf_counter()
            with app.app_context():
                first = listener.tick()
            caught_up = time.perf_counter() - started
            with app.app_context():
                second = listener.tick()
            second_look = time.perf_counter() - started - caught_up
        finally:
            catch_up.RECHECK_SECONDS = recheck_seconds
        ticks, rows, cpu, backend_cpu, wall = _idle(ctx, app, listener, database)
    finally:
        listener.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        _delete(client, prefix)
    add = ctx.report.add
    judged = size == JUDGED_AT
    add(SCENARIO, label, "catch-up on start (compare only)", round(caught_up, 2), "s")
    add(SCENARIO, label, "tenants compared in the catch-up", first.compared, "tenants")
    add(SCENARIO, label, "the catch-up's second look", round(second_look, 2), "s")
    add(SCENARIO, label, "tenants compared in the second look", second.rechecked, "tenants")
    add(SCENARIO, label, "idle tick, median", round(statistics.median(ticks) * 1000, 2), "ms",
        target=("<=", TICK_MS) if judged else None)
    add(SCENARIO, label, "idle tick, p99", round(_p99(ticks) * 1000, 2), "ms")
    add(SCENARIO, label, "change-record rows read by idle ticks", rows, "rows", target=("==", 0))
    add(SCENARIO, label, "CPU of the listener and its database backend", round(100 * (cpu + backend_cpu) / wall, 2),
        "% of a core", target=("<=", CPU_PERCENT) if judged else None)


def _prefill(client: redis.Redis, prefix: str, found) -> None:
    """Every tenant's generation, as the listener's advance writes it (the raw string)."""
    from alignwork.cache.backend import format_generation
    from alignwork.cache.keys import generation_key

    pipe = client.pipeline(transaction=False)
    for count, (tenant_id, version) in enumerate(found.versions.items(), 1):
        pipe.set(prefix + generation_key(tenant_id), format_generation(found.epoch, version), ex=3600)
        if count % 10_000 == 0:
            pipe.execute()
    pipe.execute()


def _idle(ctx: Context, app, listener, database: Database) -> tuple[list[float], int, float, float, float]:
    """Tick at the listener's interval with nothing changing: tick times, rows read, the
    process's CPU seconds, the listener's PostgreSQL backend's CPU seconds, and the wall time."""
    from alignwork.services.changes import record

    seconds = ctx.plan.listener_seconds
    rows = 0
    real_look = record.changed_since

    def counted(*args, **kwargs):
        nonlocal rows
        found = real_look(*args, **kwargs)
        rows += len(found.versions)
        return found

    record.changed_since = counted
    try:
        backend = _backend_pid(database)
        backend_before = _cpu_of(backend)
        cpu_before, began = time.process_time(), time.perf_counter()
        ticks = []
        while time.perf_counter() - began < seconds:
            started = time.perf_counter()
            with app.app_context():
                listener.tick()
            ticks.append(time.perf_counter() - started)
            time.sleep(max(0.0, listener.interval - ticks[-1]))
        wall = time.perf_counter() - began
        cpu = time.process_time() - cpu_before
        backend_cpu = _cpu_of(backend) - backend_before if backend else 0.0
    finally:
        record.changed_since = real_look
    return ticks, rows, cpu, backend_cpu, wall


def _backend_pid(database: Database) -> int | None:
    """The PostgreSQL backend serving this process's listener (by its application name)."""
    if database.kind != "postgresql":
        return None
    engine = sa.create_engine(database.url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": f"alignwork-listener-{os.getpid()}"}).scalar()
    finally:
        engine.dispose()


def _cpu_of(pid: int | None) -> float:
    """User and system CPU seconds of a process, from ``/proc/<pid>/stat``."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _delete(client: redis.Redis, prefix: str) -> None:
    batch = []
    for key in client.scan_iter(match=prefix + "*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            client.delete(*batch)
            batch = []
    if batch:
        client.delete(*batch)
