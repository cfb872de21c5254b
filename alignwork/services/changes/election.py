"""Which listener works: with a shared cache on PostgreSQL, one at a time.

Several listeners on one cache are safe (they write the same values, each only if newer), but
each one's tick reads the database, so with a shared cache one leads and the others wait on a
session-level advisory lock per schema, taking over within a tick when the holder's connection
ends (its process died or its database connection broke). With a per-process cache, or on
SQLite, every listener leads: each has its own cache to keep. The reasoning and its limits are
in ``docs/architecture.md`` (the change listener).
"""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ... import metrics

log = logging.getLogger(__name__)

# Deployments sharing a database in separate schemas elect separately.
_LOCK = "hashtext('alignwork change listener ' || current_schema())"
_TRY_TO_LEAD = sa.text(f"SELECT pg_try_advisory_lock({_LOCK})")
_STEP_DOWN = sa.text(f"SELECT pg_advisory_unlock({_LOCK})")


class Election:
    """This listener's part in the election. ``contested``: whether listeners elect at all."""

    def __init__(self, contested: bool):
        self.contested = contested
        self.leading = False
        self.began = False  # the last ``lead`` made this listener the leader

    def lead(self, connection: Connection) -> bool:
        """Whether this listener works now (``began``: it has just begun to)."""
        began = False
        if not self.contested:
            self.leading = True
        elif not self.leading:
            self.leading = began = bool(connection.execute(_TRY_TO_LEAD).scalar())
            if began:
                log.info("change listener (pid %d) leads", os.getpid())
        metrics.LISTENER_LEADING.set(1 if self.leading else 0)
        self.began = began
        return self.leading

    def step_down(self, connection: Connection) -> None:
        """Leave the work to another listener: this one cannot reach the cache."""
        if self.contested and self.leading:
            connection.execute(_STEP_DOWN)
            self.lost()
            log.warning("change listener (pid %d) cannot reach the cache; leaving the work to another",
                        os.getpid())

    def lost(self) -> None:
        """The connection that held the lock is gone, and the lock with it."""
        self.leading = False
        metrics.LISTENER_LEADING.set(0)
