"""Keeping the stats rollup honest: rebuild it from the appointments, or check it against them.

The triggers (``models.rollup_sql``) keep ``appointment_counts`` exact on every write; these
are for what they cannot see: a rollup restored from an older backup, triggers disabled by hand,
rows edited in ``appointment_counts`` itself. ``flask stats rebuild-counts`` and ``flask stats
check-counts`` are their commands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from ..extensions import db
from ..models import AppointmentCount, Tenant, rollup_sql
from .exceptions import Conflict, NotFound

LOCK_TIMEOUT_SECONDS = 10


def rebuild_counts(tenant_id: str | None = None) -> int:
    """Recompute the rollup (one tenant's, or all) from the appointments; returns how many
    appointments it counts.

    On PostgreSQL the transaction first takes ``LOCK TABLE appointments IN SHARE MODE``: it
    waits for writes in flight to commit and holds new ones back until the rebuild commits
    (reads go on), so no write can land between the DELETE and the INSERT ... SELECT and be
    counted twice or not at all. On SQLite the DELETE takes the database's write lock, which
    does the same. Raises ``Conflict`` if the lock is not granted within
    ``LOCK_TIMEOUT_SECONDS``, ``NotFound`` if ``tenant_id`` names no tenant.
    """
    session = db.session  # the session's commit invalidates the cached stats it rebuilt
    try:
        _require_tenant(session.connection(), tenant_id)
        if session.connection().dialect.name == "postgresql":
            # Writes queue behind a waiting LOCK: give up rather than stall them behind a
            # transaction left open somewhere.
            session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'"))
            try:
                session.execute(text("LOCK TABLE appointments IN SHARE MODE"))
            except OperationalError as exc:
                raise Conflict(f"Could not lock the appointments within {LOCK_TIMEOUT_SECONDS} s "
                               "(a long transaction is writing); nothing was changed, retry later.") from exc
        for statement in rollup_sql.rebuild(session.connection().dialect.name, tenant_id):
            session.execute(statement)
        total = select(func.coalesce(func.sum(AppointmentCount.n), 0))
        if tenant_id is not None:
            total = total.where(AppointmentCount.tenant_id == tenant_id)
        counted = int(session.scalar(total))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return counted


@dataclass
class Drift:
    """Where the rollup differs from the appointments: per tenant, per status, the rollup
    minus the appointments and how many buckets disagree."""

    seconds: float
    tenants: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return not self.tenants


def check_counts(tenant_id: str | None = None) -> Drift:
    """Compare the rollup with a GROUP BY over the appointments, in one read-only statement
    (a consistent snapshot on both databases; writers are not held back). ``NotFound`` if
    ``tenant_id`` names no tenant."""
    started = time.perf_counter()
    with db.engine.connect() as connection:
        _require_tenant(connection, tenant_id)
        rows = connection.execute(rollup_sql.differences(connection.dialect.name, tenant_id)).all()
    drift = Drift(seconds=time.perf_counter() - started)
    for tenant, status, difference, buckets in rows:
        drift.tenants.setdefault(tenant, {})[status] = (int(difference), int(buckets))
    return drift


def _require_tenant(connection: Connection, tenant_id: str | None) -> None:
    """A tenant that does not exist has no rows to differ: without this a typo in a nightly
    ``check-counts --tenant`` would report "exact" for ever."""
    if tenant_id is not None and connection.scalar(select(Tenant.id).where(Tenant.id == tenant_id)) is None:
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
