"""The databases a run measures: a fresh SQLite file, or a scratch PostgreSQL database.

Both are made from nothing with the project's own commands (``flask db upgrade``, ``flask
seed``), as an operator would, so the benchmark measures the schema and data the code really
produces. The PostgreSQL one is a database of its own on the server, dropped at the end, so a
run never touches anyone else's tables.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from tests.postgres_probe import postgres_unreachable

LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass
class Database:
    kind: str  # "sqlite" or "postgresql"
    url: str
    seeded: dict[str, int] = field(default_factory=dict)  # tenant -> appointments

    @property
    def label(self) -> str:
        return LABELS[self.kind]


def sqlite(run_dir: Path, name: str = "bench") -> Database:
    return Database("sqlite", f"sqlite:///{run_dir / (name + '.sqlite')}")


@contextlib.contextmanager
def postgres_scratch(admin_url: str) -> Iterator[Database]:
    """A new, empty database on the server behind ``admin_url``, dropped afterwards."""
    name = "alignwork_bench_" + uuid.uuid4().hex[:10]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield Database("postgresql", admin.url.set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_problem(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    if error := postgres_unreachable(admin_url, connect_timeout=3):
        return f"PostgreSQL not reachable: {error}"
    return None


def after_bulk_load(database: Database) -> None:
    """What the server would do by itself soon after a bulk load, done now so it is not done
    in the middle of a measurement: PostgreSQL's autovacuum (statistics and the visibility map
    that index-only scans need). SQLite has no such background work, so nothing is done."""
    if database.kind != "postgresql":
        return
    engine = sa.create_engine(database.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()


def server_version(database: Database) -> str:
    engine = sa.create_engine(database.url)
    try:
        with engine.connect() as conn:
            if database.kind == "sqlite":
                return "SQLite " + conn.execute(sa.text("SELECT sqlite_version()")).scalar_one()
            return "PostgreSQL " + conn.execute(sa.text("SHOW server_version")).scalar_one().split()[0]
    finally:
        engine.dispose()
