"""The tenants' generations: random tokens that say which stats entries are current.

An entry is served only if it was computed under its tenant's current generation, so writing a
new token retires every zone and date of the tenant at once, on every worker sharing the cache,
without scanning keys. Tokens are random, never counters: an evicted or lost generation is
replaced by one that no old entry carries.

An invalidation that cannot be written (the cache unreachable or hung) is remembered by the
process and replayed by its next cache read that succeeds (``replay_pending``), before anything
is served from the cache.
"""

from __future__ import annotations

import secrets
import threading

from flask import current_app

from ..cache_backends import CacheUnavailable, StatsBackend
from ..cache_keys import generation_key, generation_pattern
from ..extensions import cache

GENERATION_TTL = 7 * 24 * 3600
EVERY_TENANT = "*"  # in an invalidation: a write whose tenants are unknown


def _backend() -> StatsBackend:
    return cache.cache


def new_generation(tenant_id: str) -> str:
    """Start a generation for a tenant that has none (first use, eviction, Redis restart)."""
    candidate = secrets.token_hex(8)
    if _backend().create(generation_key(tenant_id), candidate, GENERATION_TTL):
        return candidate
    found = _backend().fetch(generation_key(tenant_id))
    return (found or [None])[0] or candidate


class _PendingInvalidations:
    """Process-local, per-app set of tenants whose invalidation could not be written (the cache
    was unreachable): replayed by the next read that reaches the cache, so entries stored before
    the outage are not served after it."""

    def __init__(self) -> None:
        self._tenants: set[str] = set()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._tenants)

    def add(self, tenant_id: str) -> None:
        with self._lock:
            self._tenants.add(tenant_id)

    def discard(self, tenant_id: str) -> None:
        with self._lock:
            self._tenants.discard(tenant_id)

    def copy(self) -> set[str]:
        """The tenants still pending; each leaves only once its invalidation is written, so a
        concurrent reader never sees "nothing pending" while a replay is still on its way."""
        with self._lock:
            return set(self._tenants)


def _pending() -> _PendingInvalidations:
    return current_app.extensions["alignwork.pending_invalidations"]


def invalidate(*tenant_ids: str) -> bool:
    """Retire every cached entry of these tenants (``EVERY_TENANT``: of all); call only after the
    write committed. Attempted even while this worker backs off from Redis. Returns False if the
    cache could not be written: the tenants are then remembered and replayed when the cache
    answers again (after the first failure the others are not tried, so a write pays at most
    one timeout)."""
    remaining = sorted(set(tenant_ids))
    while remaining:
        if not _retire(remaining[0]):
            for tenant_id in remaining:
                _pending().add(tenant_id)
            return False
        _pending().discard(remaining.pop(0))
    return True


def _retire(tenant_id: str) -> bool:
    if tenant_id == EVERY_TENANT:
        # A new generation is random and matches no stored entry: deleting them all is enough.
        try:
            _backend().delete_matching(generation_pattern())
        except CacheUnavailable:
            return False
        return True
    return _backend().force_store(generation_key(tenant_id), secrets.token_hex(8), GENERATION_TTL)


def has_pending() -> bool:
    return bool(_pending())


def replay_pending() -> bool:
    """Replay remembered invalidations; True when none is left pending. While one is, entries
    the cache holds may predate a committed write, so the caller must not serve them."""
    return invalidate(*_pending().copy())


def init_app(app) -> None:
    app.extensions["alignwork.pending_invalidations"] = _PendingInvalidations()
