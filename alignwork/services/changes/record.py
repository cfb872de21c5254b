"""What the database's change record (``tenant_changes``, kept by triggers) says: per tenant a
version that grows with every committed change to its stats or its record, and the epoch.

Plain reads for the two paths that bring changes to the cache: the app right after its own
commit (``session_hooks``) and the listener (``listener``), which passes a connection of its own.

The listener reads every tenant only in a catch-up (``versions``); on other ticks it reads the
rows committed since its last look (``changed_since``), so an idle tick reads no row however
many tenants there are. "Since" is not a version watermark: a PostgreSQL transaction draws its
version before it commits, so a later version can be seen first. It is the previous look's
snapshot instead: a row is read again if the transaction that last wrote it (``txid``, set by
a trigger) was invisible to that snapshot (at or past its ``xmax``, or in progress then). Every
transaction that becomes visible was invisible to the look before, so no commit is missed,
however late. On SQLite one writer at a time holds the database from its first write to its
commit and draws the table's maximum version plus one, so versions commit in order and the
highest version seen is an exact cursor. (``docs/architecture.md``, the change listener.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...extensions import db
from ...models import ChangeEpoch, Tenant, TenantChange
from ...models.tenant_change import new_epoch
from ..tenants import TenantInfo, info_of_row


@dataclass(frozen=True)
class Change:
    """A tenant as of its latest committed version: the record to publish (None: the tenant no
    longer exists) and when the change was made (epoch seconds, the database's clock)."""

    tenant_id: str
    version: int
    changed_at: float
    record: TenantInfo | None


@dataclass(frozen=True)
class Cursor:
    """Where the next look starts. PostgreSQL: the previous look's snapshot, ``upto`` its
    ``xmax`` and ``in_progress`` its running transactions. SQLite: ``upto`` the highest version
    seen."""

    upto: int
    in_progress: tuple[int, ...] = ()


@dataclass(frozen=True)
class Versions:
    epoch: str
    versions: dict[str, int]
    cursor: Cursor | None = None  # where ``changed_since`` starts to read what follows


def _look(conn: Connection, where: str = "", **params) -> Versions:
    """Versions of ``tenant_changes`` rows (``where`` narrows them), with the epoch and a cursor
    from the same statement, so from one snapshot: a header row first, then the tenants."""
    postgres = conn.dialect.name == "postgresql"
    snapshot = "pg_current_snapshot()::text" if postgres else "NULL"
    rows = conn.execute(sa.text(
        f"SELECT NULL AS tenant_id, NULL AS version, epoch, {snapshot} AS snapshot FROM {ChangeEpoch.__tablename__} "
        f"UNION ALL SELECT tenant_id, version, NULL, NULL FROM {TenantChange.__tablename__} {where}"), params).all()
    header = next(row for row in rows if row[0] is None)
    found = {tenant_id: version for tenant_id, version, _, _ in rows if tenant_id is not None}
    if postgres:
        _, xmax, running = header[3].split(":")
        cursor = Cursor(int(xmax), tuple(int(xid) for xid in running.split(",") if xid))
    else:
        cursor = Cursor(max(found.values(), default=params.get("upto", 0)))
    return Versions(header[2], found, cursor)


def changed_since(cursor: Cursor, connection: Connection) -> Versions:
    """The versions of the tenants whose rows changed since the look that gave ``cursor`` (and
    a few seen then, on PostgreSQL, whose writers were still running): index scans whose result
    grows with the changes, not with the tenants."""
    if connection.dialect.name == "postgresql":
        return _look(connection, "WHERE txid >= :upto OR txid = ANY(CAST(:running AS BIGINT[]))",
                     upto=cursor.upto, running=list(cursor.in_progress))
    return _look(connection, "WHERE version > :upto", upto=cursor.upto)


def _epoch_seconds(column, dialect: str):
    if dialect == "postgresql":
        return sa.extract("epoch", column)
    return (sa.func.julianday(column) - 2440587.5) * 86400.0


@contextmanager
def _connection(connection: Connection | None) -> Iterator[Connection]:
    """The caller's connection, or one of the pool's for this read alone: the app reads right
    after its commit (inside the session's after-commit hook, where the session cannot run SQL),
    and a fresh transaction sees that commit."""
    if connection is not None:
        yield connection
        return
    with db.engine.connect() as own:
        yield own


def versions(connection: Connection | None = None) -> Versions:
    """Every tenant's version and the epoch, in one statement, with the cursor from which
    ``changed_since`` goes on: the listener's catch-up, kept to two narrow columns."""
    with _connection(connection) as conn:
        return _look(conn)


def read(tenant_ids: Iterable[str] | None, connection: Connection | None = None) -> tuple[str, list[Change]]:
    """The epoch and each tenant's latest change with its record, from one snapshot, so a
    record is published with the version it was read at. Every tenant has a row (the migration
    and the triggers make one); a deleted tenant keeps its row, with no record. ``None``: every
    tenant (a write whose tenants cannot be told)."""
    wanted = sorted(set(tenant_ids)) if tenant_ids is not None else None
    tenants = Tenant.__table__
    changes = TenantChange.__table__
    epoch = sa.select(ChangeEpoch.epoch).scalar_subquery()
    with _connection(connection) as conn:
        query = (
            sa.select(changes.c.tenant_id, changes.c.version,
                      _epoch_seconds(changes.c.changed_at, conn.dialect.name).label("changed_at"),
                      *tenants.c, epoch.label("epoch"))
            .select_from(changes.outerjoin(tenants, tenants.c.id == changes.c.tenant_id))
        )
        if wanted is not None:
            query = query.where(changes.c.tenant_id.in_(wanted))
        rows = conn.execute(query).mappings().all() if wanted != [] else []
        epoch_value = rows[0]["epoch"] if rows else conn.execute(sa.select(ChangeEpoch.epoch)).scalar_one()
    result = []
    for row in rows:
        record = info_of_row(row) if row["id"] is not None else None
        result.append(Change(row["tenant_id"], int(row["version"]), float(row["changed_at"] or 0.0), record))
    return epoch_value, result


def start_new_epoch() -> str:
    """Replace the epoch (after a restore): every generation changes once, none repeats."""
    epoch = new_epoch()
    db.session.execute(sa.update(ChangeEpoch).values(epoch=epoch))
    db.session.commit()
    return epoch
