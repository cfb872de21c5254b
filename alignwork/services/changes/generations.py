"""The tenants' generations: which stats entries are current, named by the database.

A tenant's generation is ``<epoch>:<version>``, its version in the change record
(``record.py``). An entry is served only if computed under its tenant's current generation, so
advancing it retires every zone and date of the tenant at once, on every worker sharing the
cache. The cache takes a generation only if newer (``cache.backend.holds_at_least``), writing
the tenant record read in the same snapshot with it; every path (this app after its commit, the
listener) writes the same value, so a write costs one computation. An advance the cache could
not take is remembered by the process and replayed before it serves from the cache again. The
reasoning (why the database's version and not a random token, epochs, restores) is in
``docs/architecture.md`` (generations).
"""

from __future__ import annotations

import threading

from flask import current_app

from ...cache.backend import format_generation, parse_generation, stats_backend
from ...cache.keys import CHANGES_FEED, FEED_KEPT, generation_key, tenant_record_key
from . import announcements, record
from .record import Change
from ..exceptions import DATABASE_ERRORS
from ..tenants import record_ttl

GENERATION_TTL = 7 * 24 * 3600
EVERY_TENANT = "*"  # a write whose tenants cannot be told from it (invalidation reads them all)



def current(value: object) -> str | None:
    """A generation as the cache returned it, or None for none (or a value of an older release,
    which the next advance replaces)."""
    found = parse_generation(value)
    return format_generation(*found) if found is not None else None


def apply(epoch: str, found: list[Change]) -> dict[str, str]:
    """Write each change's generation and record unless the cache holds a newer one. Returns
    the generation now current for each tenant whose write reached the cache."""
    backend = stats_backend()
    written = {}
    for change in found:
        fields = change.record.as_stored() if change.record is not None else None
        generation = backend.advance(
            generation_key(change.tenant_id), tenant_record_key(change.tenant_id),
            epoch, change.version, fields, GENERATION_TTL, record_ttl())
        if generation is None:
            break  # the cache is away: the others would each pay the same timeout
        written[change.tenant_id] = generation
    if written:
        # Other processes' stream watchers read which tenants changed here, and only those
        # tenants' generations (they look at all of them when entries went missing).
        backend.announce(CHANGES_FEED, list(written), FEED_KEPT, GENERATION_TTL)
    announcements.announce({change.tenant_id: change.changed_at for change in found
                            if change.tenant_id in written})
    return written


def advance(*tenant_ids: str) -> dict[str, str] | None:
    """Bring these tenants' generations and records up to the database's versions; None if the
    database could not be read. Call after the write committed."""
    try:
        epoch, found = record.read(tenant_ids)
    except DATABASE_ERRORS:
        return None
    return apply(epoch, found)


def publish_from_database(tenant_id: str) -> str | None:
    """For a tenant whose cache holds no generation (first use, eviction, a new Redis): read its
    version from the database and write it to the cache, unless a newer one got there first.
    Returns the generation now current, or None if it could not be had."""
    return (advance(tenant_id) or {}).get(tenant_id)


def reaches_every_worker(tenant_id: str) -> bool:
    """Whether the tenant's current generation and record are in a cache every worker reads:
    after a change, whether every worker sees it from its next request (otherwise the server's
    listener brings it within a tick of reaching its cache). Advancing again is a no-op where the
    commit already did."""
    return tenant_id in (advance(tenant_id) or {}) and stats_backend().shared


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


def invalidate(*tenant_ids: str, read: tuple[str, list[Change]] | None = None) -> bool:
    """Retire every cached entry of these tenants and rewrite their records; call only after
    the write committed. Attempted even while this worker backs off from Redis. Returns False if
    the cache could not be written: the tenants are then remembered and replayed when the cache
    answers again. ``read`` is what ``record.read`` returned for them inside the committed
    transaction; without it the database is read now (and if it cannot be, the listener, which
    reads the same versions, brings them)."""
    remaining = set(tenant_ids)
    if not remaining:
        return True
    written = apply(*read) if read is not None else advance(*remaining)
    if written is None:
        return True
    for tenant_id in remaining:
        if tenant_id in written:
            _pending().discard(tenant_id)
        else:
            _pending().add(tenant_id)
    return remaining <= set(written)


def has_pending() -> bool:
    return bool(_pending())


def replay_pending(tenant_id: str) -> bool:
    """Replay remembered invalidations; True when ``tenant_id``'s is no longer pending. While it
    is, the cache's entries of that tenant may predate a committed write, so the caller must not
    serve them; another tenant's pending invalidation does not make its entries wrong (on a
    cluster it may wait for another primary, which must not send this tenant to BYPASS)."""
    invalidate(*_pending().copy())
    return tenant_id not in _pending().copy()


def init_app(app) -> None:
    app.extensions["alignwork.pending_invalidations"] = _PendingInvalidations()
