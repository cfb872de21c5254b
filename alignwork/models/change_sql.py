"""The SQL that keeps ``tenant_changes``: a per-tenant version that grows with every committed
change to what the cache holds of the tenant (its stats, its record), whoever made it.

Why here and not in the app: the database sees every writer (the API, ``flask shell``, psql,
another service, a migration, the seeder's bulk paths); the app's session sees only its own. The
cache's generation of a tenant is ``<epoch>:<version>`` (``services/changes/generations.py``), so the
after-commit path of the app and any number of listeners write the same value for one change.

What is watched:

- ``appointment_counts``, not ``appointments``: the stats are read from the rollup alone, so a
  change to an appointment alters the stats exactly when its rollup trigger changes a count,
  and that change lands here through the counts' triggers. A psql edit of the counts lands here
  the same way, and an edit that cannot alter the stats (a note, a cancelled appointment moved)
  costs no invalidation. The SQLite seeder, which drops the appointments' row triggers, still
  upserts the counts, so it is recorded too.
- ``tenants``: the record every request reads (zone, token cut-off).
- ``TRUNCATE`` of either (PostgreSQL): every tenant known here or in ``tenants``.

Versions come from one sequence (PostgreSQL) or the table's maximum plus one (SQLite, one
writer at a time), so a tenant deleted and created again never gets a version it had before.
Rows are upserted in tenant order, so two statements touching the same tenants take their row
locks in the same order (as the rollup trigger does) and cannot deadlock each other. (A
transaction of several statements can still cross another, as with the rollup; PostgreSQL then
aborts one of them whole. ``TRUNCATE`` locks every tenant's row.)
``changed_at`` is the change's statement time, from which the listener measures its lag.

On PostgreSQL every write of a row also stamps it with its transaction (``txid``, a BEFORE row
trigger, so rows written by plain SQL are stamped too): the listener reads the rows whose
writers its previous snapshot could not see (``services/changes/record.py``).

``change_epoch`` holds one random token, made with the schema: a restored database keeps its
versions but ``flask stats new-epoch`` (run after a restore) changes every generation at once.
"""

from __future__ import annotations

from .trigger_sql import pg_statement_triggers, pg_trigger_function, upsert

TABLE = "tenant_changes"
EPOCH_TABLE = "change_epoch"
SEQUENCE = "tenant_change_versions"
PG_FUNCTIONS = ("tenant_changes_from_counts", "tenant_changes_from_tenants")
_WATCHED = (("appointment_counts", "tenant_id", "counts"), ("tenants", "id", "tenants"))
TRIGGER_NAMES = tuple(f"tenant_changes_{short}_{op}" for _, _, short in _WATCHED
                      for op in ("insert", "update", "delete", "truncate"))


def _pg_bump(source: str) -> str:
    """A new version for every tenant ``source`` (a query of ``tenant_id``) yields. The version
    of an existing row is drawn in ``DO UPDATE``, that is once its row lock is held: drawn before
    (in the ``SELECT``), a writer that waited for the lock behind a transaction still writing the
    same tenant would store a number lower than that transaction's, and versions would go down."""
    return upsert(TABLE, "tenant_id, version, changed_at",
                  f"SELECT tenant_id, nextval('{SEQUENCE}'), clock_timestamp() "
                  f"FROM (SELECT DISTINCT tenant_id FROM ({source}) AS changed "
                  f"WHERE tenant_id IS NOT NULL ORDER BY tenant_id) AS ordered",
                  "tenant_id", f"version = nextval('{SEQUENCE}'), changed_at = EXCLUDED.changed_at")


def _pg_function(name: str, column: str) -> str:
    every = f"SELECT tenant_id FROM {TABLE} UNION SELECT id FROM tenants"
    return pg_trigger_function(
        name,
        on_insert=_pg_bump(f"SELECT {column} AS tenant_id FROM new_rows"),
        on_update=_pg_bump(f"SELECT {column} AS tenant_id FROM old_rows UNION SELECT {column} FROM new_rows"),
        on_delete=_pg_bump(f"SELECT {column} AS tenant_id FROM old_rows"),
        on_truncate=_pg_bump(every),
    )


def _pg_drop_triggers() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS tenant_changes_{short}_{op} ON {table}"
            for table, _, short in _WATCHED for op in ("insert", "update", "delete", "truncate")]


def _pg_create() -> list[str]:
    statements = [f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}", *_pg_drop_triggers()]
    for (table, column, short), function in zip(_WATCHED, PG_FUNCTIONS):
        statements += [_pg_function(function, column),
                       *pg_statement_triggers(f"tenant_changes_{short}", table, function)]
    return statements


def _sqlite_bump(tenant: str, also: str = "") -> str:
    condition = f"{tenant} IS NOT NULL" + (f" {also}" if also else "")
    return upsert(TABLE, "tenant_id, version, changed_at",
                  f"SELECT {tenant}, (SELECT coalesce(max(version), 0) + 1 FROM {TABLE}), "
                  f"strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE {condition}",
                  "tenant_id", "version = excluded.version, changed_at = excluded.changed_at")


def _sqlite_create() -> list[str]:
    statements = []
    for table, column, short in _WATCHED:
        # OLD before NEW: a row moved between tenants bumps both, in no fixed order, which is
        # harmless with one writer at a time.
        statements += [
            f"CREATE TRIGGER IF NOT EXISTS tenant_changes_{short}_insert AFTER INSERT ON {table} "
            f"BEGIN {_sqlite_bump('NEW.' + column)} END",
            f"CREATE TRIGGER IF NOT EXISTS tenant_changes_{short}_update AFTER UPDATE ON {table} "
            f"BEGIN {_sqlite_bump('OLD.' + column)} "
            f"{_sqlite_bump('NEW.' + column, f'AND NEW.{column} IS NOT OLD.{column}')} END",
            f"CREATE TRIGGER IF NOT EXISTS tenant_changes_{short}_delete AFTER DELETE ON {table} "
            f"BEGIN {_sqlite_bump('OLD.' + column)} END",
        ]
    return statements


def create_triggers(dialect: str) -> list[str]:
    """Statements creating the triggers; safe to run again (they replace or skip)."""
    return _pg_create() if dialect == "postgresql" else _sqlite_create()


def drop_triggers(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return _pg_drop_triggers() + [f"DROP FUNCTION IF EXISTS {name}()" for name in PG_FUNCTIONS]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGER_NAMES]


STAMP_FUNCTION = "tenant_changes_stamp"


def create_stamp(dialect: str) -> list[str]:
    """The trigger stamping each written row with its top-level transaction id (PostgreSQL;
    nothing on SQLite, where the version is the cursor); safe to run again."""
    if dialect != "postgresql":
        return []
    return [
        f"ALTER TABLE {TABLE} ALTER COLUMN txid SET DEFAULT pg_current_xact_id()::text::bigint",
        f"CREATE OR REPLACE FUNCTION {STAMP_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN NEW.txid := pg_current_xact_id()::text::bigint; RETURN NEW; END $$",
        f"DROP TRIGGER IF EXISTS {STAMP_FUNCTION} ON {TABLE}",
        f"CREATE TRIGGER {STAMP_FUNCTION} BEFORE INSERT OR UPDATE ON {TABLE} "
        f"FOR EACH ROW EXECUTE FUNCTION {STAMP_FUNCTION}()",
    ]


def drop_stamp(dialect: str) -> list[str]:
    if dialect != "postgresql":
        return []
    return [f"DROP TRIGGER IF EXISTS {STAMP_FUNCTION} ON {TABLE}", f"DROP FUNCTION IF EXISTS {STAMP_FUNCTION}()"]


def record_every_tenant(dialect: str) -> str:
    """A first version for every tenant that exists when the record is introduced: the
    generations and records are read from these rows, and a tenant without one would never be
    cached."""
    version = f"nextval('{SEQUENCE}')" if dialect == "postgresql" else "row_number() OVER (ORDER BY id)"
    return (f"INSERT INTO {TABLE} (tenant_id, version, changed_at) "
            f"SELECT id, {version}, CURRENT_TIMESTAMP FROM tenants ORDER BY id")
