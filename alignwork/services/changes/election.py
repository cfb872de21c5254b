"""Which listener works on a shared cache: the holder of a lease kept in that cache.

Several listeners on one cache are safe (they write the same values, each only if newer), but
each one's tick reads the database, so one leads and the others only ask the cache, once a
tick, whether the lease has run out. The lease lives in the cache it elects for (its key under
the app's prefix), so every deployment's cache has a leader of its own, however many share one
database. It is a compare-and-set with an expiry (``StatsBackend.lease``), not a lock held by a
socket: a leader that stops renewing (frozen, partitioned from the cache, or stepping down
because it cannot read the database) is replaced once ``LEASE_SECONDS`` have passed since its
last renewal. A leader that comes back finds the lease another's at its next renewal, which
comes before any write batch (``still_leading``), and every write is an advance only if newer
(``generations.py``), so what it writes late is never older than what the cache holds.
With a per-process cache every listener leads: each has its own cache to keep. The reasoning
and its measured bound are in ``docs/architecture.md`` (the change listener).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time

from ... import metrics
from ...cache.backend import stats_backend

log = logging.getLogger(__name__)

LEASE_KEY = "listener:lease"
LEASE_SECONDS = 1.0
# A leader renews at every tick, and again before a write batch once this much has passed: a
# long catch-up keeps its lease, and a leader frozen mid-tick learns it was replaced.
RENEW_AFTER_SECONDS = LEASE_SECONDS / 4
# A listener that could not read the database leaves the lease to the others for this long.
STAND_ASIDE_SECONDS = 2 * LEASE_SECONDS


def holder_pid(holder: str) -> int | None:
    """The process id in a holder's name (``host:pid:nonce``), for operators and tests."""
    parts = holder.split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class Election:
    """This listener's part in the election. ``contested``: whether listeners elect at all (a
    shared cache)."""

    def __init__(self, contested: bool):
        self.contested = contested
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.leading = False
        self.began = False  # the last ``lead`` made this listener the leader
        self._renewed = 0.0  # when the last renewal that succeeded was sent (monotonic)
        self._aside_until = 0.0

    def lead(self) -> bool | None:
        """Take or renew the lease: whether this listener works now (``began``: it has just
        begun to); None when the cache could not be asked (then nobody can write to it)."""
        was = self.leading
        if not self.contested:
            self.leading = True
        elif time.monotonic() < self._aside_until:
            self.leading = False
        else:
            sent = time.monotonic()
            found = stats_backend().lease(LEASE_KEY, self.holder, LEASE_SECONDS)
            if found is None:
                self.lost()
                return None
            holder, left = found
            self.leading = holder == self.holder
            if self.leading:
                self._renewed = sent
            metrics.listener_lease_seen(holder_pid(holder), LEASE_SECONDS - left if holder else None)
        self.began = self.leading and not was
        if self.began:
            metrics.LISTENER_TAKEOVERS.inc()
            if self.contested:
                log.info("change listener (pid %d) leads", os.getpid())
        elif was and not self.leading:
            log.warning("change listener (pid %d) lost its lease to another; it writes nothing more",
                        os.getpid())
        metrics.LISTENER_LEADING.set(1 if self.leading else 0)
        return self.leading

    def still_leading(self) -> bool:
        """Asked before each write batch: whether the lease is surely still this listener's,
        renewing it when a quarter of it has passed. False: stop writing (fenced)."""
        if not self.contested:
            return True
        if self.leading and time.monotonic() - self._renewed >= RENEW_AFTER_SECONDS:
            self.lead()
        return self.leading

    def step_down(self) -> None:
        """Give the lease up now (this listener cannot work: no database, or it is stopping)."""
        if self.contested and self.leading:
            stats_backend().lease(LEASE_KEY, self.holder, 0)
        self.lost()

    def stand_aside(self) -> None:
        """Give the lease up, and ask for it again only after ``STAND_ASIDE_SECONDS``: another
        listener, which may reach the database, takes it meanwhile."""
        if self.contested and self.leading:
            log.warning("change listener (pid %d) cannot read the database; leaving the work to another",
                        os.getpid())
        self.step_down()
        self._aside_until = time.monotonic() + STAND_ASIDE_SECONDS

    def lost(self) -> None:
        self.leading = False
        metrics.LISTENER_LEADING.set(0)
