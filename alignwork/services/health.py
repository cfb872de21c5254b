"""Whether the database can serve this release: reachable, and migrated to its schema.

A database that exists but was never migrated (or was migrated by an older release) answers
every query with "no such table" or "no such column": the readiness probe, the API's error
answers and the ``flask`` commands ask here instead, to say so in words and to name the fix.

The schema counts as ready at this release's Alembic head or at any revision this release does
not know: a rolling deploy migrates before it replaces the workers, so an old worker must stay
ready on a database a newer release has migrated.

Once ready, a database stays ready (no release migrates backwards while serving), so the answer
is kept per engine for the life of the process (``_ready``): the probe is asked every few
seconds, and an API error asks too. An answer that is not ready is never kept, so the moment
``flask db upgrade`` commits, the next question sees it.
"""

from __future__ import annotations

import enum
import functools
import os
import weakref
from dataclasses import dataclass

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..config import shown_url
from ..extensions import db


class Schema(enum.Enum):
    NO_DATABASE = "no database"  # a SQLite file that does not exist (not created by asking)
    UNMIGRATED = "unmigrated"    # no Alembic revision recorded: never migrated
    BEHIND = "behind"            # an older revision of this release's
    CURRENT = "current"          # this release's head
    LATER = "later"              # a revision this release does not know: a newer release's

    @property
    def ready(self) -> bool:
        return self in (Schema.CURRENT, Schema.LATER)


@dataclass(frozen=True)
class SchemaCheck:
    state: Schema
    database: str                    # the URL, fit for an operator's message (no password)
    revisions: tuple[str, ...] = ()  # what the database records
    head: str = ""                   # this release's

    @property
    def ready(self) -> bool:
        return self.state.ready

    @property
    def problem(self) -> str:
        """What is wrong, in words, without the fix (each caller names it in its own terms) and
        without the database's address (an API client has no business knowing it)."""
        if self.state is Schema.NO_DATABASE:
            return "the database does not exist yet"
        if self.state is Schema.UNMIGRATED:
            return "the database has never been migrated (it records no schema revision)"
        if self.state is Schema.BEHIND:
            return (f"the database is at schema revision {', '.join(self.revisions)}, "
                    f"behind this release's {self.head}")
        return ""


@dataclass(frozen=True)
class Readiness:
    """The readiness probe's answer: ``schema`` is None when the database could not be reached,
    and ``error`` then names the driver's exception."""

    schema: SchemaCheck | None
    error: str = ""

    @property
    def reachable(self) -> bool:
        return self.schema is not None

    @property
    def ready(self) -> bool:
        return self.schema is not None and self.schema.ready


# Process-local: the engines whose database was found ready (see the module's docstring).
_ready: weakref.WeakKeyDictionary[Engine, SchemaCheck] = weakref.WeakKeyDictionary()


@functools.cache
def _release(directory: str) -> tuple[str, frozenset[str]]:
    """This release's head and every revision it knows, read once from its migration scripts."""
    scripts = ScriptDirectory(directory)
    heads = scripts.get_heads()
    return ", ".join(sorted(heads)), frozenset(script.revision for script in scripts.walk_revisions())


def _missing_sqlite_file(url: URL) -> bool:
    """A SQLite database whose file is not there, in a folder that is: connecting would create
    it, empty. (In a folder that is not there, connecting fails: the database is unreachable.)"""
    if url.get_backend_name() != "sqlite":
        return False
    path = url.database or ""
    if path in ("", ":memory:") or path.startswith("file:"):
        return False
    return not os.path.exists(path) and os.path.isdir(os.path.dirname(os.path.abspath(path)))


def check_schema() -> SchemaCheck:
    """Where the app's database stands against this release's migrations. Connects (raising the
    driver's error if it cannot), except to a SQLite file that does not exist, which it leaves
    uncreated."""
    engine = db.engine
    if (known := _ready.get(engine)) is not None:
        return known
    shown = shown_url(engine.url)
    head, known_revisions = _release(current_app.extensions["migrate"].directory)
    if _missing_sqlite_file(engine.url):
        return SchemaCheck(Schema.NO_DATABASE, shown, head=head)
    with engine.connect() as connection:
        revisions = tuple(sorted(MigrationContext.configure(connection).get_current_heads()))
    if not revisions:
        state = Schema.UNMIGRATED
    elif not set(revisions) <= known_revisions:
        state = Schema.LATER
    elif ", ".join(revisions) == head:
        state = Schema.CURRENT
    else:
        state = Schema.BEHIND
    check = SchemaCheck(state, shown, revisions, head)
    if check.ready:
        _ready[engine] = check
    return check


def readiness() -> Readiness:
    """For the probe: once the schema is known to be ready, one cheap statement (the database
    must still answer); the schema's check until then."""
    try:
        if (known := _ready.get(db.engine)) is None:
            return Readiness(check_schema())
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return Readiness(known)
    except SQLAlchemyError as exc:
        return Readiness(None, type(exc).__name__)


def schema_problem() -> SchemaCheck | None:
    """After a database error that was not the database being down: the schema's check if the
    schema is why (not ready), else None (a bug, or the check could not tell)."""
    try:
        check = check_schema()
    except SQLAlchemyError:
        return None
    return None if check.ready else check
