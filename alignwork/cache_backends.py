"""Flask-Caching backends with what the stats cache needs beyond get and set.

``CACHE_TYPE = "SimpleCache"`` or ``"RedisCache"`` resolves to the classes here, so
``cache.cache`` is always a ``StatsBackend``: the one interface ``services/stats_cache.py`` and
``services/tenants.py`` use. It adds to Flask-Caching's backends

- reads and writes that *say* when the cache could not be used (``fetch`` returns None,
  ``store`` False) instead of looking like a miss, so a request can answer BYPASS;
- ``force_store``: one attempt even while backing off, for invalidations;
- a ``lock`` per key (one computation per cold key);
- listing and deleting by pattern with remaining TTLs, for operators (``CacheUnavailable``
  when the cache cannot be read: an empty listing would be a lie).

The Redis one fails open: any Redis error, or a call made while backing off after one, is
reported as "not used" instead of raising. Flask-Caching's own decorators do catch backend
errors, but re-raise them when the app is in debug mode and log a traceback per request
otherwise; catching them here gives one code path, one warning per outage and no timeout paid
per request while Redis is away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from fnmatch import fnmatchcase
from typing import Any, Protocol

import redis
from flask_caching.backends.rediscache import RedisCache as _RedisCache
from flask_caching.backends.simplecache import SimpleCache as _SimpleCache
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.utils import import_string

log = logging.getLogger(__name__)

BACKENDS = {
    "SimpleCache": "alignwork.cache_backends.SimpleCache",
    "RedisCache": "alignwork.cache_backends.RedisCache",
}


def resolve_cache_type(name: str) -> str:
    """Map the public ``CACHE_TYPE`` names to this module's backends."""
    short = name.rsplit(".", 1)[-1]
    if short not in BACKENDS:
        raise RuntimeError(f"CACHE_TYPE must be one of {sorted(BACKENDS)}, not {name!r}")
    return BACKENDS[short]


def is_shared(cache_type: str) -> bool:
    """Whether a resolved ``CACHE_TYPE`` is seen by every process."""
    return import_string(cache_type).shared


class CacheUnavailable(RuntimeError):
    """An operator's inspection could not reach the cache."""


class StatsBackend(Protocol):
    """What this app asks of a cache backend, beyond Flask-Caching's own methods."""

    #: True when every process sees the same entries (Redis); False for a per-process cache,
    #: which a separate ``flask`` process cannot reach.
    shared: bool

    def fetch(self, *keys: str) -> list[Any] | None:
        """The values (None where absent) in one round trip, or None if the cache was not used."""

    def store(self, key: str, value: Any, timeout: float) -> bool:
        """Whether the value was stored (False: the cache was not used)."""

    def force_store(self, key: str, value: Any, timeout: float) -> bool:
        """``store``, attempted even while backing off after a failure."""

    def create(self, key: str, value: Any, timeout: float) -> bool | None:
        """Store only if absent: True if stored, False if present, None if not used."""

    def lock(self, key: str, timeout: float, wait: float) -> AbstractContextManager[bool]:
        """Hold the lock named ``key``; yields whether it was had within ``wait`` seconds."""

    def keys_with_ttl(self, pattern: str) -> list[tuple[str, float | None]]:
        """Live keys matching the glob and seconds left (None: no expiry)."""

    def stored_key(self, key: str) -> str:
        """The key as the cache holds it (with the prefix)."""

    def delete_matching(self, pattern: str) -> int: ...

    def size(self) -> int:
        """Keys this app holds (entries, generations, records, locks)."""


class SimpleCache(_SimpleCache):
    """The in-process cache (per worker) with a per-process lock table. It is always there,
    so ``fetch`` and ``store`` never report it unused."""

    shared = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Process-local lock table: key -> [lock, users]. Entries go when their last user leaves.
        self._locks: dict[str, list] = {}
        self._locks_guard = threading.Lock()

    def fetch(self, *keys: str) -> list[Any]:
        return self.get_many(*keys)

    def store(self, key: str, value: Any, timeout: float) -> bool:
        return bool(self.set(key, value, timeout))

    force_store = store

    def create(self, key: str, value: Any, timeout: float) -> bool:
        return bool(self.add(key, value, timeout))

    @contextmanager
    def lock(self, key: str, timeout: float, wait: float) -> Iterator[bool]:
        """``timeout`` bounds a holder in other backends; a thread here always releases."""
        with self._locks_guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        acquired = entry[0].acquire(blocking=wait > 0, timeout=wait if wait > 0 else -1)
        try:
            yield acquired
        finally:
            if acquired:
                entry[0].release()
            with self._locks_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    self._locks.pop(key, None)

    def keys_with_ttl(self, pattern: str) -> list[tuple[str, float | None]]:
        now = time.time()
        found = []
        for key, (expires, _) in list(self._cache.items()):
            if fnmatchcase(key, pattern) and (expires == 0 or expires > now):
                found.append((key, None if expires == 0 else expires - now))
        return sorted(found)

    def stored_key(self, key: str) -> str:
        return key

    def delete_matching(self, pattern: str) -> int:
        keys = [k for k, _ in self.keys_with_ttl(pattern)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def size(self) -> int:
        return len(self._cache)


_UNUSED = object()  # what a guarded Redis call returns when Redis was not used


class RedisCache(_RedisCache):
    """Redis shared by every worker and host, failing open with a back-off."""

    shared = True

    def __init__(self, *args: Any, backoff_seconds: float = 5.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.backoff_seconds = backoff_seconds
        # Process-local circuit breaker: no Redis call until this monotonic time.
        self._down_until = 0.0
        self._in_outage = False
        self._state_lock = threading.Lock()

    @classmethod
    def factory(cls, app, config, args, kwargs) -> RedisCache:
        client = redis.Redis.from_url(
            config["CACHE_REDIS_URL"],
            socket_timeout=config["CACHE_REDIS_SOCKET_TIMEOUT"],
            socket_connect_timeout=config["CACHE_REDIS_SOCKET_TIMEOUT"],
            # One attempt: the back-off below is the retry policy.
            retry=Retry(NoBackoff(), 0),
        )
        return cls(
            host=client,
            key_prefix=config["CACHE_KEY_PREFIX"],
            default_timeout=kwargs.get("default_timeout", 300),
            backoff_seconds=config["CACHE_BACKOFF_SECONDS"],
        )

    # -- the circuit breaker -------------------------------------------------------------

    def _guard(self, operation, *args: Any, ignore_backoff: bool = False) -> Any:
        """``operation(*args)``, or ``_UNUSED`` while backing off or when Redis fails."""
        if self._down_until > time.monotonic() and not ignore_backoff:
            return _UNUSED
        try:
            result = operation(*args)
        except redis.RedisError as exc:
            self._trip(exc)
            return _UNUSED
        if self._in_outage:
            self._recover()
        return result

    def _trip(self, exc: Exception) -> None:
        with self._state_lock:
            self._down_until = time.monotonic() + self.backoff_seconds
            first = not self._in_outage
            self._in_outage = True
        if first:
            log.warning(
                "Redis cache unavailable (%s: %s); serving from the database and retrying every "
                "%.0f s.", type(exc).__name__, exc, self.backoff_seconds,
            )

    def _recover(self) -> None:
        with self._state_lock:
            was_out, self._in_outage = self._in_outage, False
        if was_out:
            log.warning("Redis cache reachable again; caching resumed.")

    # -- StatsBackend ----------------------------------------------------------------------

    def fetch(self, *keys: str) -> list[Any] | None:
        found = self._guard(super().get_many, *keys)
        return None if found is _UNUSED else found

    def store(self, key: str, value: Any, timeout: float) -> bool:
        return self._guard(super().set, key, value, timeout) is True

    def force_store(self, key: str, value: Any, timeout: float) -> bool:
        """One attempt even while backing off: an invalidation must not be skipped just because
        this worker saw a timeout that other workers did not."""
        return self._guard(super().set, key, value, timeout, ignore_backoff=True) is True

    def create(self, key: str, value: Any, timeout: float) -> bool | None:
        added = self._guard(super().add, key, value, timeout)
        return None if added is _UNUSED else bool(added)

    # Flask-Caching's own methods fail open too, for code that uses ``cache`` directly.

    def get(self, key: str) -> Any:
        found = self._guard(super().get, key)
        return None if found is _UNUSED else found

    def get_many(self, *keys: str) -> list[Any]:
        return self.fetch(*keys) or [None] * len(keys)

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        return self._guard(super().set, key, value, timeout) is True

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        return self._guard(super().add, key, value, timeout) is True

    def delete(self, key: str) -> bool:
        return self._guard(super().delete, key) is True

    def has(self, key: str) -> bool:
        return self._guard(super().has, key) is True

    @contextmanager
    def lock(self, key: str, timeout: float, wait: float) -> Iterator[bool]:
        """A Redis lock shared by every worker and host. ``timeout`` expires it if its holder
        dies; Redis failing counts as not acquired."""
        lock = self._write_client.lock(
            self._get_prefix() + key, timeout=timeout, sleep=0.005,
            blocking=wait > 0, blocking_timeout=wait or None, raise_on_release_error=False,
        )
        acquired = self._guard(lock.acquire) is True
        try:
            yield acquired
        finally:
            if acquired:
                self._guard(lock.release)

    # Inspection is for operators: it ignores the back-off and says plainly when Redis is away.

    @contextmanager
    def _inspecting(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise CacheUnavailable(f"Redis unreachable: {type(exc).__name__}: {exc}") from exc

    def _names(self, pattern: str) -> list[bytes]:
        return list(self._write_client.scan_iter(match=self._get_prefix() + pattern, count=1000))

    def keys_with_ttl(self, pattern: str) -> list[tuple[str, float | None]]:
        prefix = self._get_prefix()
        with self._inspecting():
            names = self._names(pattern)
            pipe = self._write_client.pipeline(transaction=False)
            for name in names:
                pipe.pttl(name)
            ttls = pipe.execute() if names else []
        return sorted(
            (name.decode()[len(prefix):], None if pttl == -1 else pttl / 1000)
            for name, pttl in zip(names, ttls) if pttl != -2
        )

    def stored_key(self, key: str) -> str:
        return self._get_prefix() + key

    def delete_matching(self, pattern: str) -> int:
        with self._inspecting():
            names = self._names(pattern)
            if names:
                self._write_client.delete(*names)
        return len(names)

    def size(self) -> int:
        """One SCAN of the keyspace: for operators and scrapes, not requests."""
        with self._inspecting():
            return len(self._names("*"))
