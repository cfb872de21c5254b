"""Flask-Caching backends with what the stats cache needs beyond get and set.

Both add a ``lock`` (one computation per cold key), key listing with remaining TTLs (for the
``flask cache`` commands and the shell), and a way to tell the caller that the cache could not
be used. ``CACHE_TYPE = "SimpleCache"`` or ``"RedisCache"`` in the config resolves to these.

The Redis one fails open: any Redis error, or a call made while backing off after one, behaves
like a miss or a no-op instead of raising. Flask-Caching's own decorators do catch backend
errors, but re-raise them when the app is in debug mode and log a traceback per request
otherwise; catching them here gives one code path, one warning per outage and no timeout paid
per request while Redis is away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import redis
from flask_caching.backends.rediscache import RedisCache as _RedisCache
from flask_caching.backends.simplecache import SimpleCache as _SimpleCache
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

#: Set to True by a backend call that could not use the cache in the current context.
cache_unavailable: ContextVar[bool] = ContextVar("cache_unavailable", default=False)

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


class CacheUnavailable(RuntimeError):
    """An operator's inspection could not reach the cache."""


class SimpleCache(_SimpleCache):
    """The in-process cache (per worker) with a per-process lock table."""

    counts_locally = True  # its size is this process's; metrics sum it over workers

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Process-local lock table: key -> [lock, users]. Entries go when their last user leaves.
        self._locks: dict[str, list] = {}
        self._locks_guard = threading.Lock()

    def set_ignoring_backoff(self, key: str, value: Any, timeout: Any = None) -> Any:
        return self.set(key, value, timeout)

    @contextmanager
    def lock(self, key: str, timeout: float, wait: float) -> Iterator[bool]:
        """Hold the lock for ``key``; yields False if it could not be had within ``wait``
        (0: one attempt). ``timeout`` bounds a holder in other backends; a thread here always
        releases."""
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
        """Live keys matching the glob ``pattern`` (as Redis SCAN would) and seconds left
        (None: never expires)."""
        now = time.time()
        found = []
        for key, (expires, _) in list(self._cache.items()):
            if fnmatchcase(key, pattern) and (expires == 0 or expires > now):
                found.append((key, None if expires == 0 else expires - now))
        return sorted(found)

    def stored_key(self, key: str) -> str:
        return key

    def ttl(self, key: str) -> float | None:
        entry = self._cache.get(key)
        if entry is None or entry[0] == 0:
            return None
        return max(0.0, entry[0] - time.time())

    def delete_matching(self, pattern: str) -> int:
        keys = [k for k, _ in self.keys_with_ttl(pattern)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def __len__(self) -> int:
        return len(self._cache)


class RedisCache(_RedisCache):
    """Redis shared by every worker and host, failing open with a back-off."""

    counts_locally = False

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

    def _guard(self, default: Any, operation, *args: Any, ignore_backoff: bool = False) -> Any:
        if self._down_until > time.monotonic() and not ignore_backoff:
            cache_unavailable.set(True)
            return default
        try:
            result = operation(*args)
        except redis.RedisError as exc:
            self._trip(exc)
            return default
        if self._in_outage:
            self._recover()
        return result

    def _trip(self, exc: Exception) -> None:
        cache_unavailable.set(True)
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

    # -- fail-open versions of the operations this app uses ------------------------------

    def get(self, key: str) -> Any:
        return self._guard(None, super().get, key)

    def get_many(self, *keys: str) -> list[Any]:
        return self._guard([None] * len(keys), super().get_many, *keys)

    def set(self, key: str, value: Any, timeout: Any = None) -> Any:
        return self._guard(False, super().set, key, value, timeout)

    def set_ignoring_backoff(self, key: str, value: Any, timeout: Any = None) -> Any:
        """One attempt even while backing off: for invalidations, which must not be skipped just
        because this worker saw a timeout that other workers did not."""
        return self._guard(False, super().set, key, value, timeout, ignore_backoff=True)

    def add(self, key: str, value: Any, timeout: Any = None) -> Any:
        return self._guard(False, super().add, key, value, timeout)

    def delete(self, key: str) -> Any:
        return self._guard(False, super().delete, key)

    def has(self, key: str) -> Any:
        return self._guard(False, super().has, key)

    # -- locks and inspection ------------------------------------------------------------

    @contextmanager
    def lock(self, key: str, timeout: float, wait: float) -> Iterator[bool]:
        """A Redis lock shared by every worker and host; yields False if not had in ``wait``
        (0: one attempt).

        ``timeout`` expires the lock if its holder dies. Redis failing counts as not acquired.
        """
        lock = self._write_client.lock(
            self._get_prefix() + "lock:" + key, timeout=timeout, sleep=0.005,
            blocking=wait > 0, blocking_timeout=wait or None, raise_on_release_error=False,
        )
        acquired = bool(self._guard(False, lock.acquire))
        try:
            yield acquired
        finally:
            if acquired:
                self._guard(None, lock.release)

    # Inspection is for operators: it ignores the back-off and says plainly when Redis is away
    # (an empty listing would be a lie), by raising CacheUnavailable.

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

    def ttl(self, key: str) -> float | None:
        with self._inspecting():
            pttl = self._write_client.pttl(self._get_prefix() + key)
        return None if pttl < 0 else pttl / 1000

    def delete_matching(self, pattern: str) -> int:
        with self._inspecting():
            names = self._names(pattern)
            if names:
                self._write_client.delete(*names)
        return len(names)

    def __len__(self) -> int:
        """Keys under this app's prefix (one SCAN of the keyspace: for operators, not requests)."""
        with self._inspecting():
            return len(self._names("*"))
