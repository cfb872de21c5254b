"""What the listener has brought to the cache, and the catch-ups that compare everything again.

The listener compares state, never a time or a sequence watermark: a transaction's versions and
timestamps are taken before it commits, so a late commit would fall behind any watermark.
``CatchUp`` remembers each tenant's version as last applied; a tenant whose database version
differs is compared with the cache's generation (one read per batch) and written only if the
cache is behind. Forgetting (a catch-up) makes every tenant compared again: on start, on a
reconnect, on a new epoch or cache identity, when a worker asks after an outage
(``cache/reconciliation.py``), and every ``FULL_CATCH_UP_SECONDS``. A catch-up that finds the
cache up to date writes nothing.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import Connection

from ... import metrics
from ...cache.backend import holds_at_least, stats_backend
from ...cache.keys import generation_key
from . import generations, record

# Besides the catch-ups that events start, one this often: a generation lost and written back
# older (an eviction racing a slow writer) is then corrected within this bound.
FULL_CATCH_UP_SECONDS = 30.0
FETCH_BATCH = 1000
WRITE_BUDGET_SECONDS = 1.0  # per tick, spent on writes that fail (a cache node away)


class CatchUp:
    """The versions applied so far, and whether a catch-up is under way."""

    def __init__(self, started: float):
        self.started = started  # changes older than this are no lag of this listener's
        self.applied: dict[str, int] = {}
        self.catching_up = True
        self.next_full = 0.0

    def forget(self) -> None:
        """Compare everything with the cache on the next tick."""
        self.applied.clear()
        self.catching_up = True

    def moved(self, versions: dict[str, int]) -> list[str]:
        return sorted(t for t, v in versions.items() if self.applied.get(t) != v)

    def finished(self, moved: list[str]) -> bool:
        """Whether the catch-up under way (if any) has just finished with this tick."""
        if self.catching_up and all(t in self.applied for t in moved):
            self.catching_up = False
            self.next_full = time.monotonic() + FULL_CATCH_UP_SECONDS
            return True
        return False

    def behind_in_cache(self, epoch: str, tenant_ids: list[str], versions: dict[str, int]) -> list[str]:
        """The tenants whose cached generation is older than the database's; the others are
        marked applied. Where the cache cannot be read in one go, all are treated as behind
        (writing is safe: an advance never lowers a generation)."""
        behind = []
        for start in range(0, len(tenant_ids), FETCH_BATCH):
            batch = tenant_ids[start:start + FETCH_BATCH]
            held = stats_backend().fetch(*(generation_key(t) for t in batch), ungated=True)
            for tenant_id, value in zip(batch, held or [None] * len(batch)):
                if holds_at_least(value, epoch, versions[tenant_id]):
                    self.applied[tenant_id] = versions[tenant_id]
                else:
                    behind.append(tenant_id)
        return behind

    def write(self, connection: Connection, tenant_ids: list[str]) -> int:
        """Write each tenant's generation and record as the database has them now; how many
        were written. Stops early once the tick's budget is spent on failing writes."""
        written = 0
        deadline = time.monotonic() + WRITE_BUDGET_SECONDS
        for start in range(0, len(tenant_ids), FETCH_BATCH):
            epoch, found = record.read(tenant_ids[start:start + FETCH_BATCH], connection)
            now = time.time()
            for change in found:
                if change.tenant_id in generations.apply(epoch, [change]):
                    self.applied[change.tenant_id] = change.version
                    written += 1
                    if change.changed_at >= self.started:
                        metrics.record_change_applied(now - change.changed_at, now)
                elif time.monotonic() > deadline:
                    return written  # the cache is (partly) away: the next tick tries again
        return written
