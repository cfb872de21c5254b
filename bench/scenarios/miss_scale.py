"""2. The MISS path at scale: the stats computation alone, on each database.

``compute_stats`` is called as the service calls it, inside an app context, so the timing is
the database work plus SQLAlchemy, without HTTP. Every statement it sends is counted with a
``before_cursor_execute`` listener; the same listener captures the statements, which are then
explained with their own parameters, so the plan shown is the plan of the query really run,
whatever its implementation becomes.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlalchemy import event

from ..databases import Database, after_bulk_load
from ..plan import size_label
from ..report import median, percentile
from . import Context

SCENARIO = "2 MISS at scale"
TARGET_MS = 50.0
MIN_REPEATS = 5


def run(ctx: Context) -> None:
    plan = ctx.plan
    for kind in plan.databases:
        database = ctx.databases[kind]
        for size in plan.miss_sizes:
            ctx.stack.seed(database, _tenant(size), size)
        after_bulk_load(database)
        for size in plan.miss_sizes:
            _measure(ctx, database, size, explain=size == max(plan.miss_sizes))


def _tenant(size: int) -> str:
    return f"miss-{size_label(size).lower()}"


def _measure(ctx: Context, database: Database, size: int, explain: bool) -> None:
    from alignwork.extensions import db
    from alignwork.periods import local_date, parse_timezone
    from alignwork.services.stats.query import compute_stats
    from alignwork.services.tenants import get_tenant

    plan = ctx.plan
    tenant_id = _tenant(size)
    app = ctx.stack.app(database)
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    with app.app_context():
        zone = parse_timezone(get_tenant(tenant_id).timezone)
        day = local_date(zone, datetime.now(timezone.utc))
        engine = db.engine
        compute_stats(tenant_id, zone, day)  # connection and caches warm, as in a running worker
        db.session.remove()
        timings: list[float] = []
        event.listen(engine, "before_cursor_execute", record)
        try:
            deadline = time.monotonic() + plan.miss_seconds
            while len(timings) < plan.miss_repeats and (len(timings) < MIN_REPEATS or time.monotonic() < deadline):
                started = time.perf_counter()
                compute_stats(tenant_id, zone, day)
                timings.append((time.perf_counter() - started) * 1000)
                db.session.remove()
        finally:
            event.remove(engine, "before_cursor_execute", record)
        per_computation = len(statements) / len(timings)
        if explain:
            first = statements[: max(1, round(per_computation))]
            plans = [_explain(engine, database.kind, sql, params) for sql, params in first]
            ctx.report.section(
                f"Plan: {database.label}, {size_label(size)} appointments",
                "\n\n".join(f"```sql\n{sql.strip()}\n```\n\n```\n{text}\n```"
                            for (sql, _), text in zip(first, plans)),
            )

    label = f"{database.label}, {size_label(size)} appointments"
    add = ctx.report.add
    add(SCENARIO, label, f"computation median ({len(timings)} runs)", median(timings), "ms",
        target=("<=", TARGET_MS) if size >= 1_000_000 else None)
    add(SCENARIO, label, "computation p95", percentile(timings, 0.95), "ms")
    add(SCENARIO, label, "SQL statements per computation", round(per_computation, 2), "statements",
        target=("==", 1))
    if explain:
        add(SCENARIO, label, "plan reads an index (1 = yes)", float(all(_uses_index(p) for p in plans)), "yes/no",
            target=("==", 1))


def _explain(engine, kind: str, statement: str, parameters) -> str:
    prefix = "EXPLAIN QUERY PLAN " if kind == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).fetchall()
    if kind == "sqlite":  # (id, parent, notused, detail): indent by depth
        depth = {0: -1}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + str(detail))
        return "\n".join(lines)
    return "\n".join(str(row[0]) for row in rows)


def _uses_index(plan: str) -> bool:
    return "INDEX" in plan.upper()
