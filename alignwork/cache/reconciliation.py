"""After an outage, a worker serves nothing from a Redis server until a change listener has
reconciled that server with the database.

Why: a HIT runs no SQL, so a worker cannot tell that the server it reaches again is a promoted
replica that never received a generation written to the old master, or a server that missed
the changes made while it was partitioned away. The listener compares every tenant's version
with the server and writes what is missing (``services/changes/listener.py``); until it has, the
worker answers from the database (BYPASS), which is always right.

How, with two keys on the server itself (one Redis or a Sentinel-managed master):

- the worker, on its first successful call after an outage, or when a new connection finds a
  server other than the one it knew (redis-py reconnects silently to a restarted server),
  ``INCR``s ``reconcile-requested`` and remembers the number;
- the listener, on each tick, reads that counter, and when it has grown runs a full catch-up
  and then writes ``reconciled`` = ``<the server's run_id>:<the counter it read>``;
- the worker serves again once ``reconciled`` names the server it is talking to (a promoted
  replica carries its old master's marker, with the old run_id) and a number at least its own.

A listener reconciles within a tick or two, so HITs resume within a second. Should no listener
run, the worker gives up waiting after ``WAIT_SECONDS`` and serves again, with a warning: the
cache is then as fresh as the app's own writes make it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .keys import RECONCILE_REQUESTED as REQUESTED
from .keys import RECONCILED

log = logging.getLogger(__name__)

WAIT_SECONDS = 5.0
CHECK_EVERY = 0.05


class ReconcileGate:
    """One per backend (process-local). ``guard`` runs a Redis call under the backend's
    fail-open guard and returns ``unused`` when Redis could not be used."""

    def __init__(self, client: Callable[[], Any], prefix: Callable[[], str],
                 guard: Callable[..., Any], unused: object):
        self._client, self._prefix, self._guard, self._unused = client, prefix, guard, unused
        self._lock = threading.Lock()
        self._closed_since: float | None = None
        self._ticket: int | None = None
        self._checked = 0.0
        self._server: str | None = None  # the run_id new connections last found

    def connected(self, run_id: str) -> None:
        """A new connection reached the server ``run_id``. The first one a process makes is
        trusted (the listener catches up when it starts); another server closes the gate."""
        with self._lock:
            known, self._server = self._server, run_id
        if known is not None and known != run_id:
            self.close()

    def close(self) -> None:
        """Serve nothing until a catch-up newer than now: the backend has just recovered from an
        outage, or found another server (a ticket taken from the old one would mean nothing)."""
        with self._lock:
            if self._closed_since is None:
                self._closed_since = time.monotonic()
            self._ticket = None

    def is_open(self) -> bool:
        if self._closed_since is None:
            return True
        now = time.monotonic()
        with self._lock:  # never held across I/O: a new connection calls ``connected``
            if self._closed_since is None:
                return True
            if now - self._closed_since > WAIT_SECONDS:
                log.warning("No change listener reconciled the Redis cache within %.0f s; serving "
                            "from it again (is a listener running?)", WAIT_SECONDS)
                self._closed_since = None
                return True
            if now - self._checked < CHECK_EVERY:
                return False
            self._checked = now
            since = self._closed_since
        if self._guard(self._reconciled) is not True:
            return False
        with self._lock:
            if self._closed_since == since:  # not closed again meanwhile
                self._closed_since = None
            return self._closed_since is None

    def _reconciled(self) -> bool:
        client, prefix = self._client(), self._prefix()
        if self._ticket is None:
            self._ticket = int(client.incr(prefix + REQUESTED))  # racing threads may both ask
        marker = client.get(prefix + RECONCILED)
        if marker is None:
            return False
        run_id, _, number = marker.decode().rpartition(":")
        return run_id == client.info("server")["run_id"] and int(number or 0) >= self._ticket

    # -- the listener's side ----------------------------------------------------------------

    def requested(self) -> int | None:
        found = self._guard(lambda: self._client().get(self._prefix() + REQUESTED), ignore_backoff=True)
        return None if found is self._unused else int(found or 0)

    def mark(self, run_id: str, number: int) -> None:
        self._guard(lambda: self._client().set(self._prefix() + RECONCILED, f"{run_id}:{number}"),
                    ignore_backoff=True)
