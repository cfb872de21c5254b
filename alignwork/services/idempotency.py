"""Stored responses of idempotent writes: find one, hold a key, store one, purge old ones.

The HTTP layer (``alignwork/idempotency.py``) decides what a request and a response are; this
module only keeps them, in the caller's transaction, so a stored response is committed exactly
with the rows it reports.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import IdempotencyKey

#: Keys are honoured at least this long; ``purge`` deletes them after it.
KEEP = timedelta(hours=24)
#: How often a process purges on its own (after a write that stored a key).
PURGE_EVERY_SECONDS = 3600.0

# Two int4 keys: a lock space apart from the listener's one-key election lock.
_HOLD = sa.text("SELECT pg_try_advisory_xact_lock(hashtext('alignwork idempotency ' || current_schema()), "
                "hashtext(:tenant_id || ' ' || :key))")


@dataclass(frozen=True)
class Stored:
    fingerprint: str
    status: int
    body: str


def hold(tenant_id: str, key: str) -> bool:
    """Take the key for the rest of this transaction; False if another transaction holds it.

    On PostgreSQL an advisory transaction lock: a concurrent request with the same key is told
    at once, instead of waiting on the row until the first commits (or, after a COMMIT lost on
    the way, until the server ends the orphaned transaction). SQLite runs one write transaction
    at a time, so a second request waits for the first and then finds its key (``store``
    refuses a duplicate). That relies on pysqlite beginning a transaction at the first write,
    not at the first read (its default, which the app keeps): ``find`` reads outside one."""
    if db.session.get_bind().dialect.name != "postgresql":
        return True
    return bool(db.session.execute(_HOLD, {"tenant_id": tenant_id, "key": key}).scalar_one())


def find(tenant_id: str, key: str) -> Stored | None:
    row = db.session.get(IdempotencyKey, (tenant_id, key), populate_existing=True)
    return None if row is None else Stored(row.fingerprint, row.status, row.body)


def store(tenant_id: str, key: str, fingerprint: str, status: int, body: str) -> bool:
    """Add the response to the caller's transaction. False if another transaction committed the
    same key first (the session is then rolled back, and the caller should ``find`` it)."""
    db.session.add(IdempotencyKey(tenant_id=tenant_id, key=key, fingerprint=fingerprint, status=status, body=body))
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def purge(now: datetime | None = None) -> int:
    """Delete the keys older than ``KEEP`` and commit; returns how many."""
    cutoff = (now or datetime.now(timezone.utc)) - KEEP
    deleted = db.session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff)).rowcount
    db.session.commit()
    return deleted


class _Schedule:
    """When this process last purged: a process purges at most once per ``PURGE_EVERY_SECONDS``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last = float("-inf")

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._last < PURGE_EVERY_SECONDS:
                return False
            self._last = now
            return True


_schedule = _Schedule()


def purge_if_due() -> int:
    """Purge if this process has not for a while: keys never pile up where nobody runs the
    command, and the table is swept by whoever writes to it."""
    return purge() if _schedule.due() else 0
