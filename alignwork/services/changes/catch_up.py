"""What the listener knows of the database and the cache, and the catch-ups that compare
everything again.

``CatchUp`` holds each tenant's version as last read from the database (``known``) and the
tenants whose version the cache may not hold yet (``unconfirmed``); each tick adds the tenants
whose rows changed since the previous look (``record.changed_since``), compares those with the
cache's generations (one read per batch) and writes the ones the cache is behind on. Forgetting
(a catch-up) makes the next look read every tenant and compare each: on start, on a reconnect,
on a new epoch or cache identity, on taking the lease, and when a worker asks after an outage
(``cache/reconciliation.py``). A catch-up that finds the cache up to date writes nothing.

Besides, every tenant confirmed after a change is compared with the cache once more,
``RECHECK_SECONDS`` later, without reading the database: a generation lost and written back older
(an eviction racing a slow writer, whose write is at most a request old) is then corrected within
that bound. The work grows with the changes, not with the tenants: an idle tick compares nothing.
A catch-up gets its second look too, of every tenant, ``RECHECK_SECONDS`` after it finished: a
replaced leader frozen between its lease check and its write could, across an epoch change,
still write an old epoch's generation once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from sqlalchemy.engine import Connection

from ... import metrics
from ...cache.backend import holds_at_least, stats_backend
from ...cache.keys import generation_key
from . import generations, record

RECHECK_SECONDS = 30.0  # longer than any request (gunicorn's timeout) that could write late
FETCH_BATCH = 1000
WRITE_BUDGET_SECONDS = 1.0  # per tick, spent on writes that fail (a cache node away)


class CatchUp:
    """The versions known and confirmed so far, and whether a catch-up is under way."""

    def __init__(self, started: float):
        self.started = started  # changes older than this are no lag of this listener's
        self.known: dict[str, int] = {}
        self.unconfirmed: set[str] = set()
        self.cursor: record.Cursor | None = None  # None: the next look reads every tenant
        self.catching_up = True
        # tenant -> when to compare it again, oldest first (an OrderedDict pops from its front
        # without rescanning the slots of entries already popped).
        self._rechecks: OrderedDict[str, float] = OrderedDict()
        self._recheck_all_at: float | None = None  # a finished catch-up's second look

    def forget(self) -> None:
        """Read and compare every tenant on the next tick."""
        self.cursor = None
        self.catching_up = True

    def look(self, connection: Connection) -> record.Versions:
        """Read the record: every tenant in a catch-up, else what changed since the last look."""
        if self.cursor is None:
            found = record.versions(connection)
            self.known = dict(found.versions)
            self.unconfirmed = set(found.versions)
            self._rechecks.clear()  # this catch-up compares every tenant
        else:
            found = record.changed_since(self.cursor, connection)
            for tenant_id, version in found.versions.items():
                if self.known.get(tenant_id) != version:
                    self.known[tenant_id] = version
                    self.unconfirmed.add(tenant_id)
        self.cursor = found.cursor
        return found

    def to_compare(self) -> tuple[list[str], list[str]]:
        """The unconfirmed tenants, and the confirmed ones whose second look is due."""
        moved = sorted(self.unconfirmed) if self.unconfirmed else []
        now, due = time.monotonic(), []
        if self._recheck_all_at is not None and self._recheck_all_at <= now and not self.catching_up:
            self._recheck_all_at = None
            self._rechecks.clear()
            return moved, sorted(set(self.known).difference(self.unconfirmed))
        while self._rechecks:
            tenant_id, when = next(iter(self._rechecks.items()))
            if when > now:
                break
            self._rechecks.popitem(last=False)
            due.append(tenant_id)
        return moved, sorted(set(due).difference(self.unconfirmed))

    def _confirmed(self, tenant_id: str) -> None:
        """The cache holds the tenant's version: compare it again later, unless in a catch-up
        (which compares everything anyway) or already due for another look."""
        if tenant_id in self.unconfirmed:
            self.unconfirmed.discard(tenant_id)
            if not self.catching_up:
                self._rechecks[tenant_id] = time.monotonic() + RECHECK_SECONDS
                self._rechecks.move_to_end(tenant_id)

    def finished(self) -> bool:
        """Whether the catch-up under way (if any) has just finished with this tick."""
        if self.catching_up and not self.unconfirmed:
            # A set keeps the table it grew to: iterating this emptied one would cost a pass
            # over every tenant's slot on each tick after a catch-up.
            self.unconfirmed = set()
            self.catching_up = False
            self._recheck_all_at = time.monotonic() + RECHECK_SECONDS
            return True
        return False

    def behind_in_cache(self, epoch: str, tenant_ids: list[str]) -> list[str]:
        """The tenants whose cached generation is older than the database's; the others are
        confirmed. Where the cache cannot be read in one go, all are treated as behind
        (writing is safe: an advance never lowers a generation)."""
        behind = []
        for start in range(0, len(tenant_ids), FETCH_BATCH):
            batch = [t for t in tenant_ids[start:start + FETCH_BATCH] if t in self.known]
            held = stats_backend().fetch(*(generation_key(t) for t in batch), ungated=True)
            for tenant_id, value in zip(batch, held or [None] * len(batch)):
                if holds_at_least(value, epoch, self.known[tenant_id]):
                    self._confirmed(tenant_id)
                else:
                    behind.append(tenant_id)
        return behind

    def write(self, connection: Connection, tenant_ids: list[str], still_leading: Callable[[], bool]) -> int:
        """Write each tenant's generation and record as the database has them now; how many
        were written. Each batch is written only while ``still_leading`` (the lease) says so;
        stops early once the tick's budget is spent on failing writes."""
        written = 0
        deadline = time.monotonic() + WRITE_BUDGET_SECONDS
        for start in range(0, len(tenant_ids), FETCH_BATCH):
            epoch, found = record.read(tenant_ids[start:start + FETCH_BATCH], connection)
            if not still_leading():
                metrics.LISTENER_FENCED.inc(len(tenant_ids) - start)
                return written
            now = time.time()
            for change in found:
                if change.tenant_id in generations.apply(epoch, [change]):
                    self.known[change.tenant_id] = max(change.version, self.known.get(change.tenant_id, 0))
                    self._confirmed(change.tenant_id)
                    written += 1
                    if change.changed_at >= self.started:
                        metrics.record_change_applied(now - change.changed_at, now)
                elif time.monotonic() > deadline:
                    return written  # the cache is (partly) away: the next tick tries again
        return written
