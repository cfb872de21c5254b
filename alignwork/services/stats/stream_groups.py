"""The streams of one tenant and zone (``stream_hub.py``), and the one read a wake makes for all
of them: 1,000 screens of one clinic cost one read of the cache (a HIT, or one computation under
the key's lock, as for a poll), not 1,000. A group also wakes at its zone's local midnight, and,
while what it sent is STALE (the database away), every ``STALE_RETRY_SECONDS``: nothing else would
wake it when the database returns, since no change is announced then.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from ...extensions import db
from ...periods import day_start, local_date
from ..exceptions import NotFound
from ..tenants import TenantInfo
from . import answer as stats_answer

STALE_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class State:
    """What a group read: the tenant record (for revocation) and the entry to send."""

    tenant: TenantInfo
    etag: str
    body: bytes
    day: str


class Group:
    """The streams of one tenant and zone, and the one read a wake makes for all of them."""

    def __init__(self, tenant_id: str, zone: ZoneInfo):
        self.tenant_id, self.zone = tenant_id, zone
        self.subscriptions: set = set()  # the hub's Subscriptions
        self.wakes = 0
        self.read_for = -1  # the wake count the state was read after
        self.state: State | None = None
        self.generation: str | None = None  # the tenant's generation when the state was read
        self.changed_at: float | None = None
        self.midnight = self._next_midnight()
        self.retry_at = math.inf  # when numbers read STALE are read again
        self._lock = threading.Lock()

    def _next_midnight(self) -> float:
        today = local_date(self.zone, datetime.now(timezone.utc))
        return day_start(self.zone, today + timedelta(days=1)).timestamp()

    def wake(self, changed_at: float | None = None) -> None:
        self.changed_at = changed_at
        self._wake_all()

    def _wake_all(self) -> None:
        """A new read is due: every stream of the group looks (the first to ask reads)."""
        self.wakes += 1
        for subscription in list(self.subscriptions):
            subscription.flag.set()

    def read(self) -> State | None:
        """The current state, read once per wake whoever asks first (None: tenant gone)."""
        with self._lock:
            now = time.time()
            # A time (midnight, a STALE read's retry) is noticed by whichever stream's wait
            # ends first, and moved on; the group's other streams are woken, not left to their
            # own waits, which would end on the moved time and miss this read.
            if now >= self.midnight:
                self.midnight = self._next_midnight()
                self._wake_all()
            if now >= self.retry_at:
                self.retry_at = math.inf
                self._wake_all()
            if self.read_for == self.wakes:
                return self.state
            wakes = self.wakes
            try:
                snapshot = stats_answer.read(self.tenant_id, self.zone)
                found = stats_answer.answer(snapshot)
                # STALE numbers are an older generation's: not read under the current one (the
                # watcher would take the group as up to date), and read again until current.
                stale = found.outcome is stats_answer.Outcome.STALE
                self.generation = None if stale else snapshot.generation
                self.retry_at = now + STALE_RETRY_SECONDS if stale else math.inf
                self.state = State(snapshot.tenant, found.entry.etag, found.entry.body, snapshot.day.isoformat())
            except NotFound:
                self.state = None
            finally:
                db.session.remove()  # no connection or session held while streams wait
            self.read_for = wakes
            return self.state
