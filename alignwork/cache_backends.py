"""Flask-Caching backends with what the stats cache needs beyond get and set.

``CACHE_TYPE`` names one of Flask-Caching's backends (``cache_config.py`` checks the settings
and resolves the name to the subclass here), so ``cache.cache`` is always a ``StatsBackend``:
the one interface ``services/stats_cache.py`` and ``services/tenants.py`` use. It adds to
Flask-Caching's backends

- reads and writes that *say* when the cache could not be used (``fetch`` returns None,
  ``store`` False) instead of looking like a miss, so a request can answer BYPASS;
- ``force_store``: one attempt even while backing off, for invalidations;
- ``advance``: a tenant's generation and record written together, only if the generation is
  newer than the one held (atomic: a Lua script in Redis, a lock in process);
- ``identity``: what the listener watches to learn that the cache it writes to was replaced
  (a restart, a failover) or came back, and must be reconciled with the database;
- a ``lock`` per key (one computation per cold key);
- listing and deleting by pattern with remaining TTLs, for operators (``CacheUnavailable``
  when the cache cannot be read: an empty listing would be a lie).

This module holds the interface and the in-process backends (``NullCache``, ``SimpleCache``);
the Redis ones (one server, Sentinel, Cluster) are in ``redis_backends.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from fnmatch import fnmatchcase
from typing import Any, Protocol

from flask_caching.backends.nullcache import NullCache as _NullCache
from flask_caching.backends.simplecache import SimpleCache as _SimpleCache
from werkzeug.utils import import_string

log = logging.getLogger(__name__)


def is_shared(cache_type: str) -> bool:
    """Whether a resolved ``CACHE_TYPE`` is the same for every process (see ``shared``)."""
    return import_string(cache_type).shared


def format_generation(epoch: str, version: int) -> str:
    """A generation as the cache holds it: ``<epoch>:<version>`` (``services/generations.py``)."""
    return f"{epoch}:{version}"


def parse_generation(value: object) -> tuple[str, int] | None:
    """The epoch and version of a stored generation (bytes from Redis, where the script writes
    it raw); None for none, or for a value of an older release (a random token)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    epoch, _, version = value.rpartition(":")
    return (epoch, int(version)) if epoch and version.isdigit() else None


class CacheUnavailable(RuntimeError):
    """An operator's inspection could not reach the cache."""


class StatsBackend(Protocol):
    """What this app asks of a cache backend, beyond Flask-Caching's own methods."""

    #: True when every process sees the same entries (Redis, and NullCache, which holds none);
    #: False for a per-process cache, which other processes' writes and ``flask`` cannot reach.
    shared: bool

    def fetch(self, *keys: str, ungated: bool = False) -> list[Any] | None:
        """The values (None where absent) in one round trip, or None if the cache was not used.
        ``ungated``: read even while waiting for a reconciliation (the listener's compare)."""

    def store(self, key: str, value: Any, timeout: float) -> bool:
        """Whether the value was stored (False: the cache was not used)."""

    def force_store(self, key: str, value: Any, timeout: float) -> bool:
        """``store``, attempted even while backing off after a failure."""

    def create(self, key: str, value: Any, timeout: float) -> bool | None:
        """Store only if absent: True if stored, False if present, None if not used."""

    def lock(self, key: str, timeout: float, wait: float) -> AbstractContextManager[bool]:
        """Hold the lock named ``key``; yields whether it was had within ``wait`` seconds."""

    def advance(self, generation_key: str, record_key: str, epoch: str, version: int,
                record: tuple | None, generation_ttl: float, record_ttl: float) -> str | None:
        """Unless the cache holds this epoch's generation at ``version`` or later, store
        ``epoch:version`` and the record (None: delete it), atomically. Returns the generation
        now held, or None if the cache was not used. Attempted even while backing off."""

    def identity(self) -> str | None:
        """Names the server(s) holding the keys, changing when one is replaced (restart,
        failover); None while unreachable."""

    def reconcile_requested(self) -> int | None:
        """How many reconciliations workers have asked for (``redis_reconciliation``); None where
        none is ever asked (a per-process cache, a cluster) or the cache is away."""

    def mark_reconciled(self, identity: str, number: int) -> None:
        """Say the server ``identity`` names was reconciled up to request ``number``."""

    def keys_with_ttl(self, pattern: str) -> list[tuple[str, float | None]]:
        """Live keys matching the glob and seconds left (None: no expiry)."""

    def stored_key(self, key: str) -> str:
        """The key as the cache holds it (with the prefix)."""

    def delete_matching(self, pattern: str) -> int: ...

    def size(self) -> int:
        """Keys this app holds (entries, generations, records, locks)."""


class NullCache(_NullCache):
    """Caching off (Flask-Caching's usual switch): nothing is stored, so every poll computes and
    answers BYPASS. Every process sees the same, empty, cache, so it counts as shared: several
    gunicorn workers stay coherent, and a write or a revocation has nothing stale to reach."""

    shared = True

    @classmethod
    def factory(cls, app, config, args, kwargs) -> NullCache:
        log.warning("CACHE_TYPE is NullCache: caching is off, every request computes its answer.")
        return cls(default_timeout=kwargs.get("default_timeout", 300))

    def fetch(self, *keys: str, ungated: bool = False) -> None:
        return None

    def store(self, key: str, value: Any, timeout: float) -> bool:
        return False

    def force_store(self, key: str, value: Any, timeout: float) -> bool:
        """Reports success: callers use it to make every process drop what it holds (an
        invalidation, a revoked token's tenant record), and no process holds anything. Reporting
        failure would queue invalidations for replay and claim revoked tokens live on."""
        return True

    def create(self, key: str, value: Any, timeout: float) -> None:
        return None

    def advance(self, generation_key: str, record_key: str, epoch: str, version: int,
                record: tuple | None, generation_ttl: float, record_ttl: float) -> str:
        """Reports the generation as held, for the reason ``force_store`` reports success."""
        return format_generation(epoch, version)

    def identity(self) -> str:
        return "null"

    def reconcile_requested(self) -> None:
        return None

    def mark_reconciled(self, identity: str, number: int) -> None:
        pass

    @contextmanager
    def lock(self, key: str, timeout: float, wait: float) -> Iterator[bool]:
        yield True

    def keys_with_ttl(self, pattern: str) -> list[tuple[str, float | None]]:
        return []

    def stored_key(self, key: str) -> str:
        return key

    def delete_matching(self, pattern: str) -> int:
        return 0

    def size(self) -> int:
        return 0


class SimpleCache(_SimpleCache):
    """The in-process cache (per worker) with a per-process lock table. It is always there,
    so ``fetch`` and ``store`` never report it unused."""

    shared = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Process-local lock table: key -> [lock, users]. Entries go when their last user leaves.
        self._locks: dict[str, list] = {}
        self._locks_guard = threading.Lock()
        self._advance_guard = threading.Lock()

    def fetch(self, *keys: str, ungated: bool = False) -> list[Any]:
        return self.get_many(*keys)

    def store(self, key: str, value: Any, timeout: float) -> bool:
        return bool(self.set(key, value, timeout))

    force_store = store

    def create(self, key: str, value: Any, timeout: float) -> bool:
        return bool(self.add(key, value, timeout))

    def advance(self, generation_key: str, record_key: str, epoch: str, version: int,
                record: tuple | None, generation_ttl: float, record_ttl: float) -> str:
        with self._advance_guard:
            held = self.get(generation_key)
            found = parse_generation(held)
            if found is not None and found[0] == epoch and found[1] >= version:
                return held
            generation = format_generation(epoch, version)
            self.set(generation_key, generation, generation_ttl)
            if record is None:
                self.delete(record_key)
            else:
                self.set(record_key, record, record_ttl)
            return generation

    def identity(self) -> str:
        return "process"

    def reconcile_requested(self) -> None:
        return None

    def mark_reconciled(self, identity: str, number: int) -> None:
        pass

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
