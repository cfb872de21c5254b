"""The change listener: brings every committed change in the database's change record to the
cache, whoever made it and whatever failed in between.

Each tick (``CHANGE_LISTENER_INTERVAL``, 0.5 s) it reads every tenant's version (one statement
on a connection of its own, not the app's pool, so the app's statement count stays the
requests') and compares it with what it last brought to the cache. What moved is compared with
the cache's generations (one read), and only what the cache does not hold yet is written,
generation and record together (``generations.apply``), so a change the app's own session has
already applied costs one read here and no computation anywhere.

It compares state, never a time or a sequence watermark: a transaction's versions and
timestamps are taken before it commits, so a late commit would fall behind any watermark. It
forgets what it applied, and so compares everything with the cache again (a catch-up), when it
starts, when its database connection comes back, when the epoch changes, and when the cache's
identity changes or the cache comes back from being unreachable (``StatsBackend.identity``,
probed every tick): a restarted or promoted Redis may have lost generations that were written
to its predecessor. A worker back from an outage asks for a catch-up too, and serves nothing
from that server until one has finished (``cache/reconciliation.py``). A catch-up that finds the
cache up to date writes nothing.

Polling rather than ``LISTEN``/``NOTIFY``: a tick is one small read, well within the 2-second
bound, works the same on SQLite, passes through any pooler, and puts no lock on every commit
(``NOTIFY`` serialises commits on a global lock). The README has the measurements.

Who listens: under gunicorn every worker runs a listener thread (``start``); ``flask stats
listen`` runs one alone. With a per-process cache each process must apply changes to its own
cache, so each listens. With a shared cache on PostgreSQL, one listener at a time works and the
others wait on an advisory lock, taking over within a tick when the holder's connection ends
(its process died or its database connection broke). Several listeners on one cache are safe
in any case: they write the same values, each only if newer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from ... import metrics
from ...cache.backend import holds_at_least, stats_backend
from ...cache.keys import generation_key
from . import generations, record
from ..exceptions import DATABASE_ERRORS

log = logging.getLogger(__name__)

# The election: a session-level advisory lock per schema (deployments sharing a database in
# separate schemas elect separately).
_LOCK = "hashtext('alignwork change listener ' || current_schema())"
_TRY_TO_LEAD = sa.text(f"SELECT pg_try_advisory_lock({_LOCK})")
_STEP_DOWN = sa.text(f"SELECT pg_advisory_unlock({_LOCK})")
# Besides the catch-ups that events start, one this often: a generation lost and written back
# older (an eviction racing a slow writer) is then corrected within this bound.
FULL_CATCH_UP_SECONDS = 30.0
FETCH_BATCH = 1000
WRITE_BUDGET_SECONDS = 1.0  # per tick, spent on writes that fail (a cache node away)


@dataclass(frozen=True)
class TickResult:
    leading: bool
    compared: int  # tenants whose version was compared with the cache
    written: int  # tenants whose generation and record were written


class ChangeListener:
    """One listener. Not thread-safe: one thread ticks it (``run``)."""

    def __init__(self, app: Flask):
        self.app = app
        self.interval = float(app.config["CHANGE_LISTENER_INTERVAL"])
        self._applied: dict[str, int] = {}
        self._epoch: str | None = None
        self._identity: str | None = None
        self._engine: Engine | None = None
        self._connection: Connection | None = None
        self._leading = False
        self._elect = stats_backend().shared and self._dialect() == "postgresql"
        self._catching_up = True
        self._started = time.time()
        self._next_full_catch_up = 0.0
        self._reconciled_up_to = 0  # the workers' reconciliation requests answered so far

    # -- the database connection ---------------------------------------------------------------

    def _dialect(self) -> str:
        return sa.engine.make_url(self.app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name()

    def _connect(self) -> Connection:
        if self._connection is None:
            if self._engine is None:
                options = self.app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
                connect_args = dict(options.get("connect_args", {}))
                if self._dialect() == "postgresql":
                    # Operators find it in pg_stat_activity; a connection that stops answering
                    # (a half-open socket) is dropped within seconds, and its lock with it.
                    connect_args.setdefault("application_name", f"alignwork-listener-{os.getpid()}")
                    connect_args.update(connect_timeout=5, keepalives=1, keepalives_idle=5,
                                        keepalives_interval=2, keepalives_count=2)
                self._engine = sa.create_engine(
                    self.app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool, connect_args=connect_args)
            # Autocommit: each read sees every commit so far, and no transaction stays open.
            self._connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._leading = False
            self._forget()
            metrics.LISTENER_CONNECTED.set(1)
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except DATABASE_ERRORS:
                pass
        self._connection = None
        self._leading = False
        metrics.LISTENER_CONNECTED.set(0)
        metrics.LISTENER_LEADING.set(0)

    def close(self) -> None:
        self._disconnect()
        if self._engine is not None:
            self._engine.dispose()

    def _lead(self, connection: Connection) -> bool:
        """Whether this listener is the one that works (always, unless elected: see above)."""
        if not self._elect:
            self._leading = True
        elif not self._leading:
            self._leading = bool(connection.execute(_TRY_TO_LEAD).scalar())
            if self._leading:
                self._forget()
                log.info("change listener (pid %d) leads", os.getpid())
        metrics.LISTENER_LEADING.set(1 if self._leading else 0)
        return self._leading

    def _step_down(self, connection: Connection) -> None:
        if self._elect and self._leading:
            connection.execute(_STEP_DOWN)
            self._leading = False
            metrics.LISTENER_LEADING.set(0)
            log.warning("change listener (pid %d) cannot reach the cache; leaving the work to another",
                        os.getpid())

    def _forget(self) -> None:
        """Compare everything with the cache on the next tick (a catch-up)."""
        self._applied.clear()
        self._catching_up = True

    # -- a tick ----------------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Apply what changed; raises nothing for a database or cache that is away."""
        # Every process probes its cache, leading or not: a probe that succeeds ends the
        # process's back-off, and on a cluster it learns a promotion, within a tick.
        identity = stats_backend().identity()
        if identity != self._identity:
            self._identity = identity
            self._forget()
        try:
            connection = self._connect()
            if not self._lead(connection):
                return TickResult(False, 0, 0)
            if identity is None:  # nothing can be applied from here: let a listener that can lead
                self._step_down(connection)
                return TickResult(False, 0, 0)
            if time.monotonic() >= self._next_full_catch_up:
                self._forget()
            requested = stats_backend().reconcile_requested()
            if requested is not None and requested > self._reconciled_up_to:
                self._forget()  # a worker came back from an outage and waits for a catch-up
            found = record.versions(connection)
            if found.epoch != self._epoch:
                self._epoch = found.epoch
                self._forget()
            moved = sorted(t for t, v in found.versions.items() if self._applied.get(t) != v)
            stale = self._behind_in_cache(found.epoch, moved, found.versions)
            written = self._write(connection, stale) if stale else 0
            if self._catching_up and all(t in self._applied for t in moved):
                self._catching_up = False
                self._next_full_catch_up = time.monotonic() + FULL_CATCH_UP_SECONDS
                if requested is not None:
                    stats_backend().mark_reconciled(identity, requested)
                    self._reconciled_up_to = requested
            return TickResult(True, len(moved), written)
        except DATABASE_ERRORS as exc:
            if self._connection is not None:
                log.warning("change listener lost the database (%s); reconnecting", type(exc).__name__)
            self._disconnect()
            return TickResult(False, 0, 0)

    def _behind_in_cache(self, epoch: str, tenant_ids: list[str], versions: dict[str, int]) -> list[str]:
        """The tenants whose cached generation is older than the database's; the others are
        marked applied. Where the cache cannot be read in one go, all are treated as behind
        (writing is safe: an advance never lowers a generation)."""
        behind = []
        for start in range(0, len(tenant_ids), FETCH_BATCH):
            batch = tenant_ids[start:start + FETCH_BATCH]
            held = stats_backend().fetch(*(generation_key(t) for t in batch), ungated=True)
            for tenant_id, value in zip(batch, held or [None] * len(batch)):
                if holds_at_least(value, epoch, versions[tenant_id]):
                    self._applied[tenant_id] = versions[tenant_id]
                else:
                    behind.append(tenant_id)
        return behind

    def _write(self, connection: Connection, tenant_ids: list[str]) -> int:
        written = 0
        deadline = time.monotonic() + WRITE_BUDGET_SECONDS
        for start in range(0, len(tenant_ids), FETCH_BATCH):
            epoch, found = record.read(tenant_ids[start:start + FETCH_BATCH], connection)
            now = time.time()
            for change in found:
                if change.tenant_id in generations.apply(epoch, [change]):
                    self._applied[change.tenant_id] = change.version
                    written += 1
                    if change.changed_at >= self._started:  # older ones: no lag of this listener's
                        metrics.record_change_applied(now - change.changed_at, now)
                elif time.monotonic() > deadline:
                    return written  # the cache is (partly) away: the next tick tries again
        return written

    # -- running ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set. Supervises itself: an unexpected error is logged and the
        listener starts afresh (reconnect, catch up) on the next tick."""
        log.info("change listener (pid %d) started, every %.2f s", os.getpid(), self.interval)
        metrics.LISTENER_RUNNING.set(1)
        try:
            while not stop.is_set():
                try:
                    with self.app.app_context():
                        self.tick()
                except Exception:  # noqa: BLE001 - the listener must outlive any one failure
                    log.exception("change listener failed; starting afresh")
                    self._disconnect()
                stop.wait(self.interval)
        finally:
            self.close()
            metrics.LISTENER_RUNNING.set(0)


def start(app: Flask) -> threading.Event | None:
    """Run a listener in a daemon thread of this process (a gunicorn worker), unless the app is
    configured not to (``CHANGE_LISTENER = "off"``). Returns the event that stops it."""
    if app.config["CHANGE_LISTENER"] == "off":
        return None
    stop = threading.Event()
    thread = threading.Thread(target=ChangeListener(app).run, args=(stop,), name="change-listener",
                              daemon=True)
    thread.start()
    return stop
