"""The SQL shapes both trigger modules (``rollup_sql``, ``change_sql``) build from: the upsert
each trigger writes its table with, and PostgreSQL's statement-level trigger function with the
four triggers that run it.

A statement-level trigger sees a statement's rows in the transition tables ``new_rows`` and
``old_rows``; ``TRUNCATE`` has none, so its branch must make do without them.
"""

from __future__ import annotations


def upsert(table: str, columns: str, rows: str, key: str, assignments: str) -> str:
    """``INSERT INTO table (columns) rows ON CONFLICT (key) DO UPDATE SET assignments;``"""
    return f"INSERT INTO {table} ({columns}) {rows} ON CONFLICT ({key}) DO UPDATE SET {assignments};"


def pg_trigger_function(name: str, on_insert: str, on_update: str, on_delete: str, on_truncate: str) -> str:
    """A plpgsql trigger function that runs one statement per operation and returns NULL."""
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$\n"
        f"BEGIN\n"
        f"  IF TG_OP = 'INSERT' THEN\n    {on_insert}\n"
        f"  ELSIF TG_OP = 'UPDATE' THEN\n    {on_update}\n"
        f"  ELSIF TG_OP = 'DELETE' THEN\n    {on_delete}\n"
        f"  ELSE\n    {on_truncate}\n"
        f"  END IF;\n"
        f"  RETURN NULL;\n"
        f"END\n$body$"
    )


def pg_statement_triggers(prefix: str, table: str, function: str) -> list[str]:
    """``<prefix>_insert``, ``_update``, ``_delete`` and ``_truncate``: one trigger per statement
    on ``table``, each running ``function`` with the transition tables its operation has."""
    run = f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    return [
        f"CREATE TRIGGER {prefix}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows {run}",
        f"CREATE TRIGGER {prefix}_update AFTER UPDATE ON {table} "
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows {run}",
        f"CREATE TRIGGER {prefix}_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows {run}",
        f"CREATE TRIGGER {prefix}_truncate AFTER TRUNCATE ON {table} {run}",
    ]
