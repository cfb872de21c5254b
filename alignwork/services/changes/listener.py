"""The change listener: brings every committed change in the database's change record to the
cache, whoever made it and whatever failed in between.

Each tick (``CHANGE_LISTENER_INTERVAL``, 0.5 s) the listener holding the cache's lease
(``election.py``) reads the rows of the change record committed since its last look (one
statement on a connection of its own, not the app's pool, so the app's statement count stays
the requests'), and what moved is compared with the cache and written if behind
(``catch_up.py``). So a change the app's own session has already applied costs one read here
and no computation anywhere, and an idle tick reads no row. The other listeners ask the cache
for the lease and do nothing else: no database connection, no probe beyond that call (on a
cluster they still probe every primary, to learn promotions).

Under gunicorn every worker runs a listener thread (``start``); ``flask stats listen`` runs one
alone. Why polling and not ``LISTEN``/``NOTIFY``, why a thread, and the measured bounds are in
``docs/architecture.md`` (the change listener).
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
from ...cache.backend import stats_backend
from ..exceptions import DATABASE_ERRORS
from .catch_up import CatchUp
from .election import Election

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickResult:
    leading: bool
    compared: int  # tenants whose version moved (or a catch-up's), compared with the cache
    written: int  # tenants whose generation and record were written
    rechecked: int = 0  # tenants compared again after a change (``catch_up.py``)


class ChangeListener:
    """One listener: its database connection, and the tick that uses the election and the
    catch-up. Not thread-safe: one thread ticks it (``run``)."""

    def __init__(self, app: Flask):
        self.app = app
        self.interval = float(app.config["CHANGE_LISTENER_INTERVAL"])
        self._epoch: str | None = None
        self._identity: str | None = None
        self._engine: Engine | None = None
        self._connection: Connection | None = None
        self._failing: str | None = None  # the database failure last logged, until it ends
        # This app's cache, whatever context the caller has pushed (or none: under gunicorn the
        # listener starts outside any): another app's would decide whether to elect at all.
        with app.app_context():
            self.election = Election(stats_backend().shared)
        self.catch_up = CatchUp(started=time.time())

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
                    # (a half-open socket) is dropped within seconds.
                    connect_args.setdefault("application_name", f"alignwork-listener-{os.getpid()}")
                    connect_args.update(connect_timeout=5, keepalives=1, keepalives_idle=5,
                                        keepalives_interval=2, keepalives_count=2)
                self._engine = sa.create_engine(
                    self.app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool, connect_args=connect_args)
            # Autocommit: each read sees every commit so far, and no transaction stays open.
            self._connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self.catch_up.forget()
            metrics.LISTENER_CONNECTED.set(1)
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except DATABASE_ERRORS:
                pass
        self._connection = None
        metrics.LISTENER_CONNECTED.set(0)

    def close(self) -> None:
        try:
            with self.app.app_context():
                self.election.step_down()  # the next listener need not wait for the lease to run out
        except Exception:  # noqa: BLE001 - closing must not fail (outside an app context, say)
            self.election.lost()
        self._disconnect()
        if self._engine is not None:
            self._engine.dispose()

    def _database_failed(self, exc: Exception) -> None:
        """One log line per change of state, not one per tick: a database that stays away (or a
        schema never migrated) would otherwise log twice a second for as long as it lasts."""
        failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
        if failure != self._failing:
            log.warning("change listener lost the database (%s); reconnecting every %.2f s",
                        failure, self.interval)
            self._failing = failure
        self._disconnect()
        self.election.stand_aside()

    def _database_answers(self) -> None:
        if self._failing is not None:
            log.info("change listener reached the database again")
            self._failing = None

    # -- a tick ----------------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Apply what changed; raises nothing for a database or cache that is away."""
        backend = stats_backend()
        # For a follower the lease call is its only probe: a call that succeeds ends the
        # process's back-off within a tick. A cluster's primaries are probed one by one.
        leading = self.election.lead()
        backend.ask_reconciliation()  # if this process waits for one after an outage
        if not leading:
            if leading is None or not getattr(backend, "reconciles", True):
                backend.identity()
            self._disconnect()
            return TickResult(False, 0, 0)
        identity = backend.identity()
        if identity != self._identity or self.election.began:
            self._identity = identity
            self.catch_up.forget()
        if identity is None:  # nothing can be applied from here: let a listener that can lead
            self.election.step_down()
            return TickResult(False, 0, 0)
        try:
            result = self._apply(self._connect(), identity)
            self._database_answers()
            return result
        except DATABASE_ERRORS as exc:
            self._database_failed(exc)
            return TickResult(False, 0, 0)

    def _apply(self, connection: Connection, identity: str) -> TickResult:
        catch_up = self.catch_up
        requested = stats_backend().reconcile_requested()
        if requested:
            catch_up.forget()  # workers came back from an outage and wait for a catch-up
        every = catch_up.cursor is None
        found = catch_up.look(connection)
        if found.epoch != self._epoch:
            self._epoch = found.epoch
            if not every:  # every generation changes: compare every tenant again
                catch_up.forget()
                found = catch_up.look(connection)
        moved, rechecked = catch_up.to_compare()
        stale = catch_up.behind_in_cache(found.epoch, moved + rechecked)
        written = catch_up.write(connection, stale, self.election.still_leading) if stale else 0
        if catch_up.finished() and requested and self.election.still_leading():
            stats_backend().mark_reconciled(identity, requested)
        return TickResult(True, len(moved), written, len(rechecked))

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
