"""What the stats cache needs of a backend beyond Flask-Caching's get and set: ``StatsBackend``.

``CACHE_TYPE`` names one of Flask-Caching's backends (``settings.py`` checks the settings and
resolves the name to this app's subclass of it), so ``cache.cache`` is always a ``StatsBackend``:
the one interface ``services/stats/answer.py`` and ``services/tenants.py`` use. It adds to
Flask-Caching's backends

- reads and writes that *say* when the cache could not be used (``fetch`` returns None,
  ``store`` False) instead of looking like a miss, so a request can answer BYPASS;
- ``force_store``: one attempt even while backing off, for invalidations;
- ``advance``: a tenant's generation and record written together, only if the generation is
  newer than the one held (atomic: a Lua script in Redis, a lock in process);
- ``identity``: what the listener watches to learn that the cache it writes to was replaced
  (a restart, a failover) or came back, and must be reconciled with the database;
- a ``lock`` per key (one computation per cold key);
- ``take``: read and delete at once (single-use stream tickets);
- a ``lease``: a named, expiring compare-and-set, which elects the change listener that works on
  this cache (``services/changes/election.py``);
- ``hold_slot``: one of a limited number of expiring places, taken atomically by any worker,
  which counts a tenant's open streams across workers (``services/stats/stream_hub.py``);
- a feed of changed tenant ids (``announce``, ``read_feed``: a Redis stream, ``feed.py``), from
  which every process's stream watcher learns which tenants changed without reading every
  tenant it watches;
- listing and deleting by pattern with remaining TTLs, for operators (``CacheUnavailable``
  when the cache cannot be read: an empty listing would be a lie).

This module holds the interface and the generation format; the in-process backends
(``NullCache``, ``SimpleCache``) are in ``local.py``, the Redis ones in ``redis_backends.py`` (one
server, Sentinel) and ``cluster.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from werkzeug.utils import import_string

from ..extensions import cache
from .feed import FeedRead


def is_shared(cache_type: str) -> bool:
    """Whether a resolved ``CACHE_TYPE`` is the same for every process (see ``shared``)."""
    return import_string(cache_type).shared


def stats_backend() -> StatsBackend:
    """The bound cache's backend: the one way services reach it. ``CACHE_TYPE`` always resolves
    to one of this package's classes, so it has every ``StatsBackend`` method."""
    return cache.cache


def holds_at_least(held: object, epoch: str, version: int) -> bool:
    """Whether a stored generation is already ``epoch:version`` or newer: the one rule for
    "newer". An advance writes only when this is false (``SimpleCache.advance``, and the Lua
    script, which a property test holds to this function), and the listener skips a tenant
    whose cached generation passes it. Another epoch is never "at least": after a restore every
    generation changes once."""
    found = parse_generation(held)
    return found is not None and found[0] == epoch and found[1] >= version


def format_generation(epoch: str, version: int) -> str:
    """A generation as the cache holds it: ``<epoch>:<version>`` (``services/changes/generations.py``)."""
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

    def take(self, key: str) -> Any:
        """The value, deleted in the same step (one ``GETDEL`` in Redis), so that of several
        processes taking one key at most one gets it; None if absent. ``CacheUnavailable`` if
        the cache could not be used (a caller that must not grant twice then refuses)."""

    def lock(self, key: str, timeout: float, wait: float) -> AbstractContextManager[bool]:
        """Hold the lock named ``key``; yields whether it was had within ``wait`` seconds."""

    def advance(self, generation_key: str, record_key: str, epoch: str, version: int,
                record: Any, generation_ttl: float, record_ttl: float) -> str | None:
        """Unless the cache holds this epoch's generation at ``version`` or later, store
        ``epoch:version`` and the record (None: delete it), atomically. Returns the generation
        now held, or None if the cache was not used. Attempted even while backing off."""

    def lease(self, key: str, holder: str, seconds: float) -> tuple[str, float] | None:
        """Take or renew the lease named ``key`` for ``holder`` for ``seconds``, unless another
        holder's has not expired; ``seconds`` 0 gives it up if ``holder`` has it. Atomic (a
        compare-and-set in the cache), so a holder replaced while it was away cannot renew.
        Returns the holder now ('' for none) and the seconds its lease has left, or None if the
        cache was not used. Attempted even while backing off."""

    def hold_slot(self, key: str, holder: str, limit: int, seconds: float) -> bool | None:
        """Take one of the ``limit`` places named ``key`` for ``holder`` for ``seconds``, or
        renew it if ``holder`` has it: True if held, False if ``limit`` others hold places whose
        time has not run out, None if the cache was not used. Atomic, on the cache's clock, so
        workers racing for the last place cannot both have it; a place whose holder died frees
        itself when its time runs out. In-process caches always grant it (the process's own
        count is the whole count)."""

    def renew_slots(self, held: Mapping[str, Collection[str]], seconds: float) -> None:
        """Renew these holders' places (key -> holders) for ``seconds``, best effort; a place
        the cache lost (a flush, a failover) is taken again, over the limit if need be: its
        holder is still there."""

    def release_slot(self, key: str, holder: str) -> None:
        """Give up ``holder``'s place, best effort (it frees itself when its time runs out)."""

    def announce(self, key: str, tenant_ids: Collection[str], keep: int, ttl: float) -> bool:
        """Append these tenants to the feed named ``key`` (about the newest ``keep`` entries are
        kept, and the whole feed expires ``ttl`` seconds after its last entry), in one round
        trip, attempted even while backing off; whether it was written. A per-process cache has
        no other process to tell: nothing to do."""

    def read_feed(self, key: str, position: str | None, most: int) -> FeedRead | None:
        """The tenants announced after ``position`` (None: never read), or ``tenants`` None when
        that cannot be told (then the position is the newest entry's); None if the cache was not
        used. However many tenants are watched, one round trip when nothing is amiss. A cache no
        other process shares has nothing announced: always an empty set."""

    def identity(self) -> str | None:
        """Names the server(s) holding the keys, changing when one is replaced (restart,
        failover); None while unreachable."""

    def ask_reconciliation(self) -> None:
        """While this process waits for a reconciliation after an outage, ask for it (again,
        should a FLUSHALL have taken the request) and look for the answer; otherwise nothing
        (a flag is read). The listener calls it every tick in every process, so a worker that
        gets no request after the cache returns is reconciled all the same."""

    def reconcile_requested(self) -> frozenset[str] | None:
        """The reconciliations workers wait for (request ids, ``reconciliation.py``); None where
        none is ever asked (a per-process cache, a cluster) or the cache is away."""

    def mark_reconciled(self, identity: str, requests: frozenset[str]) -> None:
        """Say the server ``identity`` names was reconciled by a catch-up begun after
        ``requests`` were read."""

    def keys_with_ttl(self, pattern: str) -> list[tuple[str, float | None]]:
        """Live keys matching the glob and seconds left (None: no expiry)."""

    def stored_key(self, key: str) -> str:
        """The key as the cache holds it (with the prefix)."""

    def delete_matching(self, pattern: str) -> int: ...

    def size(self) -> int:
        """Keys this app holds (entries, generations, records, locks)."""
