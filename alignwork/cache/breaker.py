"""The circuit breaker of the Redis backends: a Redis call either answers or is reported unused.

Any Redis error, or a call made while backing off after an outage, is reported as "not used"
(``UNUSED``) instead of raising, so a request answers BYPASS from the database. Only an outage
(``OUTAGE_ERRORS``: a failed connection, a timeout, a cluster that cannot serve the slot, a
server that has just been demoted) opens the breaker; any other error (a refused command, a
lock that vanished) costs the one call that met it, never the calls after it. Flask-Caching's
own decorators do catch backend errors, but re-raise them when the app is in debug mode and log
a traceback per request otherwise; catching them here gives one code path, one warning per
outage and no timeout paid per request while Redis is away. Deletes an outage swallows are
counted and reported when it ends (``fail_open.py`` counts them).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from redis.exceptions import ClusterError, ReadOnlyError, RedisClusterException

log = logging.getLogger(__name__)

UNUSED = object()  # what a guarded Redis call returns when Redis was not used
# What a Redis call can raise; a cluster client that cannot reach any node to learn the slot map
# raises RedisClusterException, which is not a RedisError.
REDIS_ERRORS = (redis.RedisError, RedisClusterException)
# The ones that say the server is away: the breaker opens on these alone. (ReadOnlyError: a
# master demoted under a client that still writes to it; ClusterError: a slot no node serves.)
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, ReadOnlyError, ClusterError, RedisClusterException)


class CircuitBreaker:
    """Mixed into every Redis backend. Process-local state, per shard (the server holding a key:
    one, but for a cluster): no call to a shard until its monotonic time in ``_down_until``."""

    _unused = UNUSED

    def __init__(self, backoff_seconds: float):
        self.backoff_seconds = backoff_seconds
        self._lost_deletes = 0  # deletes an outage swallowed, reported when it ends
        self._down_until: dict[str | None, float] = {}
        self._state_lock = threading.Lock()
        self._refusals_told: set[str] = set()  # kinds of non-outage error already logged

    def _shard(self, keys: tuple[str, ...]) -> str | None:
        """Which server's breaker guards these keys (None: the one breaker of a single server,
        or of calls that span servers)."""
        return None

    def _outage_ended(self) -> None:
        """Called when a shard that was backed off from answers again, before that is logged."""

    def _guard(self, operation, *args: Any, ignore_backoff: bool = False, key: str | tuple = ()) -> Any:
        """``operation(*args)``, or ``UNUSED`` while backing off from the shard holding ``key``
        (or keys) or when Redis fails."""
        shard = self._shard((key,) if isinstance(key, str) else key)
        if not ignore_backoff and self._down_until.get(shard, 0.0) > time.monotonic():
            return UNUSED
        try:
            result = operation(*args)
        except OUTAGE_ERRORS as exc:
            self._trip(shard, exc)
            return UNUSED
        except REDIS_ERRORS as exc:
            self._refused(exc)
            return UNUSED
        if self._down_until:
            self._recover(shard)
        return result

    def _refused(self, exc: Exception) -> None:
        """A server that answered with an error is not away: the call fails open and the next
        one tries again. Each kind is logged once as a warning (a server out of memory refuses
        every write), then at debug."""
        kind = type(exc).__name__
        told = kind in self._refusals_told
        self._refusals_told.add(kind)
        (log.debug if told else log.warning)("Redis cache refused a call (%s: %s); answered without it.", kind, exc)

    def _trip(self, shard: str | None, exc: Exception) -> None:
        """One warning per outage: the first shard to fail says so; more shards failing while
        it lasts (a whole cluster away, node after node) are told at INFO."""
        with self._state_lock:
            first = shard not in self._down_until
            outage_begins = not self._down_until
            self._down_until[shard] = time.monotonic() + self.backoff_seconds
        if first:
            (log.warning if outage_begins else log.info)(
                "Redis cache unavailable%s (%s: %s); serving from the database and retrying every "
                "%.0f s.", f" on {shard}" if shard else "", type(exc).__name__, exc, self.backoff_seconds,
            )

    def _recover(self, shard: str | None) -> None:
        """Any call that succeeds ends the back-off: the listener's probe, which ignores it,
        brings requests back to Redis within its interval of Redis answering again."""
        with self._state_lock:
            was_out = self._down_until.pop(shard, None) is not None
            lost, self._lost_deletes = (self._lost_deletes, 0) if was_out and not self._down_until else (0, self._lost_deletes)
        if was_out:
            self._outage_ended()
        if lost:
            log.warning("Redis cache reachable again%s; caching resumed. %d delete(s) made during the outage were "
                        "lost: those keys may still hold their old values until they expire.",
                        f" on {shard}" if shard else "", lost)
        elif was_out:
            log.info("Redis cache reachable again%s; caching resumed.", f" on {shard}" if shard else "")

    def _count_lost_deletes(self, count: int) -> None:
        with self._state_lock:
            self._lost_deletes += count
