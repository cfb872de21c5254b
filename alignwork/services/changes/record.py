"""What the database's change record (``tenant_changes``, kept by triggers) says: per tenant a
version that grows with every committed change to its stats or its record, and the epoch.

Plain reads for the two paths that bring changes to the cache: the app right after its own
commit (``session_hooks``) and the listener (``listener``), which passes a connection of its own.
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
class Versions:
    epoch: str
    versions: dict[str, int]


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
    """Every tenant's version and the epoch, in one statement: the listener's look on each tick,
    kept to two narrow columns so that it stays cheap with many tenants."""
    epoch = sa.select(ChangeEpoch.epoch).scalar_subquery()
    with _connection(connection) as conn:
        rows = conn.execute(sa.select(TenantChange.tenant_id, TenantChange.version, epoch)).all()
        if not rows:
            return Versions(conn.execute(sa.select(ChangeEpoch.epoch)).scalar_one(), {})
    return Versions(rows[0][2], {tenant_id: version for tenant_id, version, _ in rows})


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
