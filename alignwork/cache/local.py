"""The in-process backends: ``NullCache`` (caching off) and ``SimpleCache`` (one cache per
process), each Flask-Caching's namesake with the ``StatsBackend`` methods (``backend.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from fnmatch import fnmatchcase
from typing import Any

from flask_caching.backends.nullcache import NullCache as _NullCache
from flask_caching.backends.simplecache import SimpleCache as _SimpleCache

from .backend import format_generation, holds_at_least
from .feed import FeedRead

log = logging.getLogger(__name__)


class _InProcess:
    """What the in-process backends share: keys are held as given, and no reconciliation is ever
    asked for (nothing here outlives its process, or is reached again after an outage)."""

    def ask_reconciliation(self) -> None:
        pass

    def reconcile_requested(self) -> None:
        return None

    def mark_reconciled(self, identity: str, requests: frozenset[str]) -> None:
        pass

    def stored_key(self, key: str) -> str:
        return key

    def lease(self, key: str, holder: str, seconds: float) -> tuple[str, float]:
        """Always granted: a per-process cache has no other listener to elect against."""
        return (holder, seconds) if seconds > 0 else ("", 0.0)

    def hold_slot(self, key: str, holder: str, limit: int, seconds: float) -> bool:
        """Always granted: with a per-process cache there is one process, whose own count of
        its streams is the whole count."""
        return True

    def renew_slots(self, held: Mapping[str, Collection[str]], seconds: float) -> None:
        pass

    def release_slot(self, key: str, holder: str) -> None:
        pass

    def announce(self, key: str, tenant_ids: Collection[str], keep: int, ttl: float) -> bool:
        """Nothing to tell: no other process shares this cache (``NullCache`` holds nothing
        another process could serve stale)."""
        return True

    def read_feed(self, key: str, position: str | None, most: int) -> FeedRead:
        """Nothing is ever announced here."""
        return FeedRead(position or "", frozenset())


class NullCache(_InProcess, _NullCache):
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

    def take(self, key: str) -> None:
        return None

    def advance(self, generation_key: str, record_key: str, epoch: str, version: int,
                record: Any, generation_ttl: float, record_ttl: float) -> str:
        """Reports the generation as held, for the reason ``force_store`` reports success."""
        return format_generation(epoch, version)

    def identity(self) -> str:
        return "null"

    @contextmanager
    def lock(self, key: str, timeout: float, wait: float) -> Iterator[bool]:
        yield True

    def keys_with_ttl(self, pattern: str) -> list[tuple[str, float | None]]:
        return []

    def delete_matching(self, pattern: str) -> int:
        return 0

    def size(self) -> int:
        return 0


class SimpleCache(_InProcess, _SimpleCache):
    """The in-process cache (per worker) with a per-process lock table. It is always there,
    so ``fetch`` and ``store`` never report it unused."""

    shared = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Process-local lock table: key -> [lock, users]. Entries go when their last user leaves.
        self._locks: dict[str, list] = {}
        self._locks_guard = threading.Lock()
        self._advance_guard = threading.Lock()
        self._take_guard = threading.Lock()

    def fetch(self, *keys: str, ungated: bool = False) -> list[Any]:
        return self.get_many(*keys)

    def store(self, key: str, value: Any, timeout: float) -> bool:
        return bool(self.set(key, value, timeout))

    force_store = store

    def create(self, key: str, value: Any, timeout: float) -> bool:
        return bool(self.add(key, value, timeout))

    def take(self, key: str) -> Any:
        with self._take_guard:
            value = self.get(key)
            if value is not None:
                self.delete(key)
            return value

    def advance(self, generation_key: str, record_key: str, epoch: str, version: int,
                record: Any, generation_ttl: float, record_ttl: float) -> str:
        with self._advance_guard:
            held = self.get(generation_key)
            if holds_at_least(held, epoch, version):
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

    def delete_matching(self, pattern: str) -> int:
        keys = [k for k, _ in self.keys_with_ttl(pattern)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def size(self) -> int:
        return len(self._cache)
