"""The database's record of changes to what the cache holds of each tenant (``change_sql``).

Kept by triggers, read by the invalidation after a commit and by the change listener. No
foreign key to ``tenants``: a deleted tenant's row stays, so its version keeps growing if the
tenant is created again, and no cached value of the old tenant is ever current for the new one.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, String, event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from . import change_sql
from .types import UTCDateTime


class TenantChange(db.Model):
    __tablename__ = change_sql.TABLE

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # PostgreSQL: the transaction that last wrote the row, set by a trigger (``change_sql``), so
    # the listener reads only what committed since its last look. Unused on SQLite (0).
    txid: Mapped[int] = mapped_column(BigInteger, index=True, server_default="0")


class ChangeEpoch(db.Model):
    """One row: the token that starts every generation (a new one retires them all)."""

    __tablename__ = change_sql.EPOCH_TABLE
    __table_args__ = (CheckConstraint("id = 1", name="change_epoch_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[str] = mapped_column(String(32))


def new_epoch() -> str:
    return secrets.token_hex(6)


def epoch_row_sql() -> str:
    """Insert the epoch row unless there is one (``:epoch`` bound)."""
    return f"INSERT INTO {change_sql.EPOCH_TABLE} (id, epoch) VALUES (1, :epoch) ON CONFLICT (id) DO NOTHING"


@event.listens_for(db.metadata, "after_create")
def _create_triggers(target, connection: Connection, **kw) -> None:
    """``create_all`` makes what migration 0006 makes (test schemas, new installs): after every
    table, since the triggers read ``tenants`` and watch ``appointment_counts``."""
    for statement in change_sql.create_triggers(connection.dialect.name) + \
            change_sql.create_stamp(connection.dialect.name):
        connection.exec_driver_sql(statement)
    connection.execute(db.text(epoch_row_sql()), {"epoch": new_epoch()})


@event.listens_for(db.metadata, "before_drop")
def _drop_triggers(target, connection: Connection, **kw) -> None:
    for statement in change_sql.drop_triggers(connection.dialect.name) + change_sql.drop_stamp(connection.dialect.name):
        connection.exec_driver_sql(statement)
