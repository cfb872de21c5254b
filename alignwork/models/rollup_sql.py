"""The SQL that keeps ``appointment_counts`` exact: the bucket expression, the triggers, the
rebuild and the drift check, for SQLite and PostgreSQL.

Why in SQL: the database sees every write (raw SQL, bulk ORM statements, other services), the
ORM does not. Why one module: the models attach the triggers to ``create_all`` and migration
0005 creates them from these same strings, so a schema made either way holds the same triggers.

The bucket of an instant is the start of its 15-minute UTC bucket, exactly as
``appointment_count.bucket_of`` computes it in Python:

- PostgreSQL stores ``timestamptz``; the expression floors it in UTC, whatever the session's
  ``TimeZone``.
- SQLite stores text. SQLAlchemy writes ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive UTC) and reads any
  ISO 8601 text (``datetime.fromisoformat``, an offset converted to UTC). The expression parses
  the text with SQLite's date functions after cutting the fractional seconds (SQLite keeps only
  milliseconds and some versions round ``:59.9999`` up into the next minute, Python truncates),
  and writes the bucket in SQLAlchemy's own format, so the rollup's key and the stats query's
  bounds compare as equal text. A ``starts_at`` SQLite cannot parse is refused by the trigger
  rather than counted in a wrong bucket.

Concurrency (PostgreSQL): one statement-level trigger per statement aggregates the statement's
changes (transition tables) and applies them with one ``INSERT ... ON CONFLICT`` in key order.
Every statement therefore locks rollup rows in the same global order, so two statements moving
appointments A->B and B->A wait for each other instead of deadlocking, and a bulk statement
touches each bucket once. (A transaction of several statements locks its buckets statement by
statement; should two such transactions cross, PostgreSQL aborts one of them whole, so still no
count is lost. The API and the services write one statement per transaction.) A bucket that
falls to zero keeps its row with ``n = 0``, which sums as zero; ``rebuild`` writes only
non-zero rows. SQLite has one writer at a time, so its row triggers cannot deadlock.
"""

from __future__ import annotations

import sqlalchemy as sa

from .appointment import COUNTED_STATUSES
from .trigger_sql import pg_statement_triggers, pg_trigger_function, upsert

TABLE = "appointment_counts"
TRIGGER_NAMES = ("appointment_counts_insert", "appointment_counts_update",
                 "appointment_counts_delete", "appointment_counts_truncate")
PG_FUNCTION = "appointment_counts_follow"
COUNTED = "(" + ", ".join(f"'{status}'" for status in COUNTED_STATUSES) + ")"
UNPARSEABLE = "appointments.starts_at is not an ISO 8601 timestamp"


def bucket_sql(dialect: str, column: str) -> str:
    """SQL for the 15-minute UTC bucket of the instant in ``column`` (see the module doc)."""
    if dialect == "postgresql":
        utc = f"({column} AT TIME ZONE 'UTC')"
        return (f"((date_trunc('hour', {utc}) + make_interval(mins => "
                f"extract(minute FROM {utc})::int / 15 * 15)) AT TIME ZONE 'UTC')")
    whole_seconds = (f"(CASE WHEN substr({column}, 20, 1) = '.' THEN substr({column}, 1, 19) || "
                     f"ltrim(substr({column}, 21), '0123456789') ELSE {column} END)")
    return (f"(strftime('%Y-%m-%d %H:', {whole_seconds}) || printf('%02d', "
            f"CAST(strftime('%M', {whole_seconds}) AS INTEGER) / 15 * 15) || ':00.000000')")


def _sqlite_upsert(row: str, delta: int) -> str:
    bucket = bucket_sql("sqlite", f"{row}.starts_at")
    return upsert(TABLE, "tenant_id, bucket, status, n",
                  f"SELECT {row}.tenant_id, {bucket}, {row}.status, {delta} WHERE {row}.status IN {COUNTED}",
                  "tenant_id, bucket, status", "n = n + excluded.n")


def _sqlite_refuse_unparseable(row: str) -> str:
    return (f"SELECT RAISE(ABORT, '{UNPARSEABLE}') "
            f"WHERE {bucket_sql('sqlite', row + '.starts_at')} IS NULL;")


def _sqlite_create() -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS appointment_counts_insert AFTER INSERT ON appointments BEGIN "
        f"{_sqlite_refuse_unparseable('NEW')} {_sqlite_upsert('NEW', 1)} END",
        f"CREATE TRIGGER IF NOT EXISTS appointment_counts_update "
        f"AFTER UPDATE OF tenant_id, starts_at, status ON appointments BEGIN "
        f"{_sqlite_refuse_unparseable('NEW')} {_sqlite_upsert('OLD', -1)} {_sqlite_upsert('NEW', 1)} END",
        f"CREATE TRIGGER IF NOT EXISTS appointment_counts_delete AFTER DELETE ON appointments BEGIN "
        f"{_sqlite_upsert('OLD', -1)} END",
    ]


def _pg_changes(sources: list[tuple[str, int]]) -> str:
    """Net change per key from transition tables, keys sorted: the lock order."""
    parts = " UNION ALL ".join(
        f"SELECT tenant_id, {bucket_sql('postgresql', 'starts_at')} AS bucket, status, {sign} AS n "
        f"FROM {table} WHERE status IN {COUNTED}"
        for table, sign in sources
    )
    return upsert(f"{TABLE} AS c", "tenant_id, bucket, status, n",
                  f"SELECT tenant_id, bucket, status, sum(n) FROM ({parts}) AS change "
                  f"GROUP BY tenant_id, bucket, status HAVING sum(n) <> 0 "
                  f"ORDER BY tenant_id, bucket, status",
                  "tenant_id, bucket, status", "n = c.n + EXCLUDED.n")


def _pg_create() -> list[str]:
    function = pg_trigger_function(
        PG_FUNCTION,
        on_insert=_pg_changes([("new_rows", 1)]),
        on_update=_pg_changes([("old_rows", -1), ("new_rows", 1)]),
        on_delete=_pg_changes([("old_rows", -1)]),
        on_truncate=f"DELETE FROM {TABLE};",
    )
    return [function, *(f"DROP TRIGGER IF EXISTS {name} ON appointments" for name in TRIGGER_NAMES),
            *pg_statement_triggers("appointment_counts", "appointments", PG_FUNCTION)]


def create_triggers(dialect: str) -> list[str]:
    """Statements creating the triggers; safe to run again (they replace or skip)."""
    return _pg_create() if dialect == "postgresql" else _sqlite_create()


def drop_triggers(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {name} ON appointments" for name in TRIGGER_NAMES] + [
            f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()"]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGER_NAMES]


# Lightweight table clauses (not the models), so migrations can use the statements below.
_appointments = sa.table("appointments", sa.column("tenant_id"), sa.column("starts_at"), sa.column("status"))
_counts = sa.table(TABLE, sa.column("tenant_id"), sa.column("bucket"), sa.column("status"), sa.column("n"))


def counted_appointments(dialect: str, tenant_id: str | None = None) -> sa.Select:
    """``(tenant_id, bucket, status, n)`` counted from the appointments themselves."""
    bucket = sa.literal_column(bucket_sql(dialect, "appointments.starts_at"))
    query = (sa.select(_appointments.c.tenant_id, bucket.label("bucket"), _appointments.c.status,
                       sa.func.count().label("n"))
             .where(_appointments.c.status.in_(COUNTED_STATUSES))
             .group_by(_appointments.c.tenant_id, bucket, _appointments.c.status))
    if tenant_id is not None:
        query = query.where(_appointments.c.tenant_id == tenant_id)
    return query


def rebuild(dialect: str, tenant_id: str | None = None) -> list[sa.Executable]:
    """Replace the rollup (of one tenant, or all) with counts from the appointments. Exact
    only if no write commits in between: the caller holds the locks (see services.rollup)."""
    removal = sa.delete(_counts)
    if tenant_id is not None:
        removal = removal.where(_counts.c.tenant_id == tenant_id)
    fill = sa.insert(_counts).from_select(["tenant_id", "bucket", "status", "n"],
                                          counted_appointments(dialect, tenant_id))
    return [removal, fill]


def differences(dialect: str, tenant_id: str | None = None) -> sa.Select:
    """``(tenant_id, status, difference, buckets)``: per tenant and status, the rollup minus
    the appointments summed over the buckets where they differ, and how many buckets differ.
    One statement, so both sides are read from one snapshot without locking anything."""
    stored = sa.select(_counts.c.tenant_id, _counts.c.bucket, _counts.c.status, _counts.c.n)
    if tenant_id is not None:
        stored = stored.where(_counts.c.tenant_id == tenant_id)
    counted = counted_appointments(dialect, tenant_id).subquery("counted")
    actual = sa.select(counted.c.tenant_id, counted.c.bucket, counted.c.status, -counted.c.n)
    both = sa.union_all(stored, actual).subquery("both_sides")
    per_bucket = (sa.select(both.c.tenant_id, both.c.status, sa.func.sum(both.c.n).label("n"))
                  .group_by(both.c.tenant_id, both.c.bucket, both.c.status)
                  .having(sa.func.sum(both.c.n) != 0)
                  .subquery("differing"))
    return (sa.select(per_bucket.c.tenant_id, per_bucket.c.status,
                      sa.func.sum(per_bucket.c.n).label("difference"),
                      sa.func.count().label("buckets"))
            .group_by(per_bucket.c.tenant_id, per_bucket.c.status)
            .order_by(per_bucket.c.tenant_id, per_bucket.c.status))
