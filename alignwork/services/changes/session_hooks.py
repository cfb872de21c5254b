"""The instant path: a commit in this app's session retires its tenants' cached stats and
rewrites their records before the commit call returns.

The database's change record and the listener (``listener.py``) bring every committed change to
the cache within seconds, whoever made it; this path only makes the app's own writes visible on
the very next poll. Both write the same generation (``generations.py``), so a write seen by
both costs one computation.

Writers do not call the cache. The session notes which tenants a transaction touched, from
the objects it flushes and from the DML statements it executes (bulk ORM statements, Core
inserts, raw SQL text), and invalidates them after the commit succeeds; a rollback forgets them.
So the API, ``flask shell``, the seeder, ``flask stats rebuild-counts`` and code not yet written
all invalidate without remembering to.

When a statement's tenants cannot be read from it (raw SQL, a bulk update without a
``tenant_id =`` condition), every tenant's version is read, and those that moved advance. A write that does not go through this app's session at all (``psql``, another
service) reaches the cache through the listener alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask_sqlalchemy.session import Session
from sqlalchemy import event, inspect
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, TextClause

from ...models import Appointment, AppointmentCount, Tenant
from . import generations, record
from .generations import EVERY_TENANT

WATCHED_TABLES = frozenset({Appointment.__tablename__, AppointmentCount.__tablename__})
_PUBLICATION = "alignwork.publication"
_WRITE_SQL = re.compile(r"\b(insert|update|delete|replace|truncate|copy|merge|call)\b", re.IGNORECASE)


@dataclass
class _Publication:
    """What a transaction will publish after it commits, kept in ``session.info`` (the one
    place SQLAlchemy offers per session) under one key, and dropped on rollback."""

    touched: set[str] = field(default_factory=set)  # tenants whose stats may have changed
    records: set[str] = field(default_factory=set)  # tenants whose own row changed
    read: tuple | None = None  # ``record.read`` of them, inside the transaction

    @property
    def tenants(self) -> set[str]:
        return self.touched | self.records


def _publication(session: Session) -> _Publication:
    found = session.info.get(_PUBLICATION)
    if found is None:
        found = session.info[_PUBLICATION] = _Publication()
    return found


def _before_flush(session: Session, flush_context, instances) -> None:
    touched: set[str] = set()
    changed: set[str] = set()
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, Appointment):
            touched.add(obj.tenant_id)
        elif isinstance(obj, Tenant):
            changed.add(obj.id)
    for obj in session.dirty:
        if isinstance(obj, Appointment) and session.is_modified(obj):
            touched.add(obj.tenant_id)
            touched.update(inspect(obj).attrs.tenant_id.history.deleted)  # moved between tenants
        elif isinstance(obj, Tenant) and session.is_modified(obj):
            changed.add(obj.id)
    publication = _publication(session)
    publication.touched.update(filter(None, touched))
    publication.records.update(changed)


def _tenants_of_statement(state: ORMExecuteState) -> set[str] | None:
    """The tenants a DML statement on a watched table can change; None if not such a statement;
    ``{EVERY_TENANT}`` if they cannot be told from the statement."""
    statement = state.statement
    if isinstance(statement, TextClause):
        text = statement.text
        if _WRITE_SQL.search(text) and any(name in text.lower() for name in WATCHED_TABLES):
            return {EVERY_TENANT}
        return None
    if not (state.is_insert or state.is_update or state.is_delete):
        return None
    table = getattr(statement, "table", None)
    if getattr(table, "name", None) not in WATCHED_TABLES:
        return None
    if state.is_insert and getattr(statement, "select", None) is not None:  # INSERT ... SELECT
        return _tenant_condition(getattr(statement.select, "whereclause", None)) or {EVERY_TENANT}
    if state.is_insert:
        rows = state.parameters if isinstance(state.parameters, list) else [state.parameters or {}]
        found = {row.get("tenant_id") for row in rows}
        return {EVERY_TENANT} if None in found or not rows else found
    if state.is_update and _sets_tenant(statement, state.parameters):
        return {EVERY_TENANT}
    return _tenant_condition(statement.whereclause) or {EVERY_TENANT}


def _sets_tenant(statement, parameters) -> bool:
    values = getattr(statement, "_values", None) or {}
    names = {getattr(column, "key", column) for column in values}
    if isinstance(parameters, dict):
        names |= set(parameters)
    return "tenant_id" in names


def _tenant_condition(where) -> set[str] | None:
    """The tenant ids of a top-level ``tenant_id = x`` or ``tenant_id IN (...)`` condition."""
    if where is None:
        return None
    clauses = where.clauses if isinstance(where, BooleanClauseList) and where.operator is operators.and_ \
        else [where]
    for clause in clauses:
        if not isinstance(clause, BinaryExpression) or getattr(clause.left, "key", None) != "tenant_id":
            continue
        if not isinstance(clause.right, BindParameter):
            continue
        value = clause.right.effective_value
        if clause.operator is operators.eq and isinstance(value, str):
            return {value}
        if clause.operator is operators.in_op and isinstance(value, (list, tuple)) \
                and all(isinstance(v, str) for v in value):
            return set(value)
    return None


def _do_orm_execute(state: ORMExecuteState) -> None:
    found = _tenants_of_statement(state)
    if found:
        _publication(state.session).touched.update(found)


def _before_commit(session: Session) -> None:
    """Read the versions this transaction gives its tenants, inside it: after the commit the
    session can run no SQL, and a connection of its own might have to wait for the pool."""
    session.flush()  # the last flush, so every touched tenant is known and its version written
    publication = session.info.get(_PUBLICATION)
    if publication is not None and publication.tenants:
        tenants = publication.tenants
        every = EVERY_TENANT in tenants  # raw SQL: read every tenant, advance those that moved
        publication.read = record.read(None if every else tenants, session.connection())


def _after_commit(session: Session) -> None:
    publication = session.info.pop(_PUBLICATION, None)
    if publication is not None and publication.read is not None:
        read = publication.read
        generations.invalidate(*(change.tenant_id for change in read[1]), read=read)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PUBLICATION, None)


def init_app(app) -> None:
    """Listen on Flask-SQLAlchemy's session class (once per process: the listeners find the app
    through ``current_app`` when they run)."""
    for name, listener in (("before_flush", _before_flush), ("do_orm_execute", _do_orm_execute),
                           ("before_commit", _before_commit), ("after_commit", _after_commit),
                           ("after_rollback", _after_rollback)):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
