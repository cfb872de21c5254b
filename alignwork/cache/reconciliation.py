"""After an outage, a worker serves nothing from a Redis server until a change listener has
reconciled that server with the database.

Why: a HIT runs no SQL, so a worker cannot tell that the server it reaches again is a promoted
replica that never received a generation, or a server that missed the changes made while it
was partitioned away. The listener compares every tenant's version with the server and writes
what is missing (``services/changes/listener.py``); until it has, the worker answers from the
database (BYPASS), which is always right.

How, with two keys on the server itself (one Redis or a Sentinel-managed master):

- the worker, once the server answers after an outage, or when a new connection finds a server
  other than the one it knew (redis-py reconnects silently to a restarted server), picks a
  random request id and adds it to the set ``reconcile-asks``;
- the listener, on each tick, reads that set; when it holds requests it runs a full catch-up,
  then answers each request it read, in the hash ``reconciled-asks`` (request -> the server's
  run_id), and takes them out of the set;
- the worker serves again once its own request is answered with the run_id of the server it is
  talking to (a promoted replica carries its old master's answers, with the old run_id).

Requests are matched by identity, never by a counter or a high-water mark: a FLUSHALL (or an
eviction) that empties either key only makes the worker ask again (each check re-adds an
unanswered request), and an answer is never taken for a request it was not given for.

Who asks: the worker's own listener thread, every tick (``StatsBackend.ask_reconciliation``),
so a worker that receives no request meanwhile is reconciled too; requests ask as well. A listener reconciles within a tick or two,
so HITs resume within a second. Should none answer within ``WAIT_SECONDS`` of the first request
(none runs, or none reaches that server), the worker serves again, with a warning and a count
(``alignwork_cache_unreconciled_total``): the cache is then as fresh as the app's writes make it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .. import metrics
from .keys import RECONCILE_ASKS, RECONCILED_ASKS

log = logging.getLogger(__name__)

WAIT_SECONDS = 5.0
CHECK_EVERY = 0.05
KEEP_SECONDS = 60  # requests and answers nobody collects (a worker that died) go after this

# KEYS: the asks, the answers. ARGV: the request, KEEP_SECONDS. The answer (a run_id), or,
# when there is none, the request (re-)added: one round trip, and no window in which an answer
# arrives between looking for it and asking again (that would cost a needless catch-up).
ASK_SCRIPT = """
local answer = redis.call('HGET', KEYS[2], ARGV[1])
if answer then return answer end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return false
"""


class ReconcileGate:
    """One per backend (process-local). ``guard`` runs a Redis call under the backend's
    fail-open guard and returns ``unused`` when Redis could not be used."""

    def __init__(self, client: Callable[[], Any], prefix: Callable[[], str],
                 guard: Callable[..., Any], unused: object):
        self._client, self._prefix, self._guard, self._unused = client, prefix, guard, unused
        self._lock = threading.Lock()  # never held across I/O: a new connection calls ``connected``
        self._asking = threading.Lock()  # one thread at a time asks; the others wait closed
        self._closed = False
        self._request: str | None = None  # this closure's request id
        self._asked_at: float | None = None  # when it was first on the server
        self._checked = 0.0
        self._server: str | None = None  # the run_id new connections last found
        self._script: Any = None

    def connected(self, run_id: str) -> None:
        """A new connection reached the server ``run_id``. The first one a process makes is
        trusted (the listener catches up when it starts); another server closes the gate."""
        with self._lock:
            known, self._server = self._server, run_id
        if known is not None and known != run_id:
            self.close()

    def close(self) -> None:
        """Serve nothing until a catch-up asked for from now on: the backend has just recovered
        from an outage, or found another server (a request made to the old one means nothing)."""
        with self._lock:
            self._closed = True
            self._request, self._asked_at = None, None

    def is_open(self) -> bool:
        """Whether the stats may be served from the server; while not, asks for (and looks for
        the answer to) a reconciliation, at most every ``CHECK_EVERY``."""
        if not self._closed:
            return True
        now = time.monotonic()
        with self._lock:
            if not self._closed:
                return True
            if self._asked_at is not None and now - self._asked_at > WAIT_SECONDS:
                log.warning("No change listener reconciled the Redis cache within %.0f s; serving "
                            "from it again (is a listener running?)", WAIT_SECONDS)
                metrics.CACHE_UNRECONCILED.inc()
                self._closed = False
                return True
            if now - self._checked < CHECK_EVERY or not self._asking.acquire(blocking=False):
                return False
            self._checked = now
            if self._request is None:
                self._request = uuid.uuid4().hex
            request = self._request
        try:
            answered = self._guard(self._ask, request)
        finally:
            self._asking.release()
        with self._lock:
            if self._request != request:  # closed again meanwhile: that request means nothing
                return False
            if answered is self._unused:
                return False
            if self._asked_at is None:
                self._asked_at = now
            if answered is True:
                self._closed = False
            return not self._closed

    def _ask(self, request: str) -> bool:
        """True when ``request`` was answered for the server this client talks to; otherwise
        makes sure it is asked (again, should a FLUSHALL have taken it)."""
        client, prefix = self._client(), self._prefix()
        if self._script is None:
            self._script = client.register_script(ASK_SCRIPT)
        answer = self._script(keys=[prefix + RECONCILE_ASKS, prefix + RECONCILED_ASKS],
                              args=[request, KEEP_SECONDS])
        return answer is not None and answer.decode() == client.info("server")["run_id"]

    # -- the listener's side ----------------------------------------------------------------

    def requested(self) -> frozenset[str] | None:
        """The requests waiting for an answer (None: the server is away)."""
        found = self._guard(lambda: self._client().smembers(self._prefix() + RECONCILE_ASKS), ignore_backoff=True)
        return None if found is self._unused else frozenset(r.decode() for r in found)

    def mark(self, run_id: str, requests: Iterable[str]) -> None:
        """Answer ``requests`` (read before the catch-up that has just finished began) for the
        server ``run_id``."""
        requests = list(requests)
        if requests:
            self._guard(self._answer, run_id, requests, ignore_backoff=True)

    def _answer(self, run_id: str, requests: list[str]) -> None:
        prefix = self._prefix()
        pipe = self._client().pipeline(transaction=True)
        pipe.hset(prefix + RECONCILED_ASKS, mapping=dict.fromkeys(requests, run_id))
        pipe.expire(prefix + RECONCILED_ASKS, KEEP_SECONDS)
        pipe.srem(prefix + RECONCILE_ASKS, *requests)
        pipe.execute()
