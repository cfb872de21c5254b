"""Mega-stats served through the Flask-Caching ``cache``: one read per poll, one computation per
change, and an answer even when the database is away.

A poll reads three keys in one round trip (``cache/keys.py`` names them): the tenant record (what
admission needs), the tenant's generation and the stats entry for the requested zone and local
date. An entry is served while it was computed under the current generation
(``changes/generations.py``); expiry (``CACHE_DEFAULT_TIMEOUT``) is only a safety net past which
the first poll recomputes under the key's lock while the others keep being served, and entries
are kept ``CACHE_STALE_SECONDS`` longer so that a poll can answer STALE while the database is
down. Why the ``cache`` object is used directly and not ``@cache.memoize``, and the staleness
bounds, are in ``docs/architecture.md`` (the stats cache).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app

from ... import metrics
from ...cache.backend import stats_backend
from ...cache.keys import StatsKey, generation_key, lock_key, tenant_record_key
from ...extensions import db
from ...periods import local_date, parse_timezone
from .. import tenants
from ..changes import generations
from . import entries, midnight
from .flights import Flights
from ..exceptions import DATABASE_ERRORS, is_transient
from .entries import Entry

LOCK_POLL_SECONDS = 0.01
LOCK_RETRY_EVERY = 10  # polls: waiters look for the value often, try the lock seldom


class Outcome(str, enum.Enum):
    HIT = "HIT"  # served from the cache
    MISS = "MISS"  # computed and stored
    BYPASS = "BYPASS"  # not from the cache, which could not be used (computed, or waited for one that was)
    STALE = "STALE"  # the database could not be read: the last stored numbers


_flights: Flights[tuple[Outcome, Entry]] = Flights()  # this process's read-throughs under way


@dataclass(frozen=True)
class Snapshot:
    """One read of the cache for a poll: everything a request needs to authenticate the caller
    and, usually, to answer without the database."""

    tenant: tenants.TenantInfo
    zone: ZoneInfo
    key: StatsKey
    generation: str | None
    entry: Entry | None
    cache_used: bool

    @property
    def current(self) -> bool:
        return self.entry is not None and self.generation is not None \
            and self.entry.generation == self.generation

    @property
    def servable(self) -> bool:
        """Current and not yet due: a HIT with no computation (``answer``, ``read_served``)."""
        return self.current and self.entry.seconds_until_due() > 0

    @property
    def day(self) -> date:
        """The local date in ``zone`` the numbers are for: the entry served is the one of this
        date, read or computed under this key, even if midnight passes while it is."""
        return self.key.day


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    entry: Entry
    not_modified: bool  # the client's If-None-Match names this entry

    @property
    def age(self) -> int:
        return max(0, int(time.time() - self.entry.stored_at))


# -- the read, the answer -------------------------------------------------------------------


class _ZoneHints:
    """Process-local memo of each tenant's zone, so a poll without ``tz`` can name its entry in
    the same round trip as the tenant record. Only a hint: the record read with it is checked,
    and a wrong guess costs one more read. Bounded; cleared when full."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self._zones: dict[str, ZoneInfo] = {}

    def get(self, tenant_id: str) -> ZoneInfo | None:
        return self._zones.get(tenant_id)

    def put(self, tenant_id: str, zone: ZoneInfo) -> None:
        if len(self._zones) >= self.size:
            self._zones.clear()
        self._zones[tenant_id] = zone


_zone_hints = _ZoneHints()


def read_served(tenant_id: str, zone: ZoneInfo | None, now: datetime) -> Snapshot | None:
    """The snapshot of a poll that ``answer`` would serve as a HIT with nothing else to do, or
    None: anything else (no hint of the tenant's zone, a record or entry missing, an entry not
    current or due, an invalidation pending, tomorrow's entry to prepare, the cache away) is
    left to ``read`` and ``answer``. One cache round trip, no SQL, no computation: the fast path
    of the poll (``alignwork/fast_path.py``) answers from it."""
    guess = zone or _zone_hints.get(tenant_id)
    if guess is None or generations.has_pending():
        return None
    key = StatsKey(tenant_id, guess.key, local_date(guess, now))
    values = stats_backend().fetch(tenant_record_key(tenant_id), generation_key(tenant_id), str(key))
    if values is None:
        return None
    tenant = tenants.TenantInfo.from_stored(values[0])
    if tenant is None or (zone is None and tenant.timezone != guess.key):
        return None
    snapshot = Snapshot(tenant, guess, key, generations.current(values[1]), Entry.from_stored(values[2]), True)
    if not snapshot.servable or midnight.to_prepare(key, guess, snapshot.generation, now) is not None:
        return None
    return snapshot


def read(tenant_id: str, zone: ZoneInfo | None = None, now: datetime | None = None) -> Snapshot:
    """Read what a poll of ``tenant_id`` in ``zone`` (default: the tenant's) needs, in one round
    trip when the zone is known. Raises ``NotFound`` for an unknown tenant."""
    backend = stats_backend()
    now = now or datetime.now(timezone.utc)
    guess = zone or _zone_hints.get(tenant_id)
    keys = [tenant_record_key(tenant_id), generation_key(tenant_id)]
    key = StatsKey(tenant_id, guess.key, local_date(guess, now)) if guess is not None else None
    if key is not None:
        keys.append(str(key))
    values = backend.fetch(*keys)
    if values is not None and generations.has_pending():
        # Replay before serving anything; a cache that still cannot be written may hold entries
        # from before a committed write of this tenant, so they are not read until it can.
        values = backend.fetch(*keys) if generations.replay_pending(tenant_id) else None
    used = values is not None
    record, generation, *stored = values if used else [None] * len(keys)
    generation = generations.current(generation)
    stored = stored[0] if stored else None
    tenant = tenants.TenantInfo.from_stored(record) or tenants.load(tenant_id, remember=used)
    zone = zone or parse_timezone(tenant.timezone)
    if key is None or guess.key != zone.key:  # no hint, or a wrong one: one more read
        _zone_hints.put(tenant_id, zone)
        key = StatsKey(tenant_id, zone.key, local_date(zone, now))
        stored = (backend.fetch(str(key)) or [None])[0] if used else None
    return Snapshot(tenant, zone, key, generation, Entry.from_stored(stored), used)


def answer(snapshot: Snapshot, if_none_match=None) -> Answer:
    """Serve the snapshot's entry if current, else compute it once (the others wait for it).

    ``if_none_match`` is the request's ETag set (anything with ``contains_weak``), or None.
    """
    started = time.perf_counter()
    outcome, entry = _resolve(snapshot)
    metrics.record_lookup(outcome.value, time.perf_counter() - started)
    if outcome is Outcome.HIT and entry.precomputed:
        metrics.STATS_PRECOMPUTED_HITS.inc()
    if outcome in (Outcome.HIT, Outcome.MISS):  # the cache is there, and the database was not needed or answered
        _prepare_tomorrow(snapshot)
    matches = if_none_match is not None and if_none_match.contains_weak(entry.etag)
    return Answer(outcome, entry, bool(matches))


def get_stats(tenant_id: str, zone: ZoneInfo | None = None, now: datetime | None = None) -> Answer:
    """Read and answer in one call: for the shell, the CLI and tests."""
    return answer(read(tenant_id, zone, now))


def _config(name: str) -> float:
    return current_app.config[name]


def _resolve(snapshot: Snapshot) -> tuple[Outcome, Entry]:
    if snapshot.cache_used and snapshot.generation is None and snapshot.entry is not None:
        snapshot = _with_generation_from_database(snapshot)
    if snapshot.servable:
        return Outcome.HIT, snapshot.entry
    try:
        if snapshot.current:
            return _refresh(snapshot)
        return _read_through(snapshot)
    except DATABASE_ERRORS as exc:
        db.session.rollback()  # whoever handles the error (or computes next) starts clean
        if snapshot.entry is None or not is_transient(exc):
            raise
        return Outcome.STALE, snapshot.entry


def _with_generation_from_database(snapshot: Snapshot) -> Snapshot:
    """The cache lost the generation but kept an entry (eviction, a generation of an older
    release): the database's version says whether the entry is still current."""
    try:
        generation = generations.publish_from_database(snapshot.tenant.id)
    except DATABASE_ERRORS:
        return snapshot
    return replace(snapshot, generation=generation)


def _refresh(snapshot: Snapshot) -> tuple[Outcome, Entry]:
    """A current entry past its safety TTL: whoever gets the lock recomputes; everybody else
    keeps being served the entry until the new one is stored."""
    key = str(snapshot.key)
    with stats_backend().lock(lock_key(key), timeout=_lock_timeout(), wait=0) as acquired:
        if not acquired:
            return Outcome.HIT, snapshot.entry
        return _compute_and_store(snapshot, snapshot.generation)


def _lock_timeout() -> int:
    return int(max(_config("STATS_LOCK_WAIT_SECONDS"), 1) * 2)


def _read_through(snapshot: Snapshot) -> tuple[Outcome, Entry]:
    """One computation per key: in this process one request goes to the cache for it and the
    others wait for its answer (``flights.py``); across processes, the cache's lock.

    A request that waited here answers as the one it waited for would have if it had polled:
    HIT when that one stored the entry, BYPASS when the cache could not be used.
    """
    if not snapshot.cache_used:
        return _compute_and_store(snapshot, None)
    deadline = time.monotonic() + _config("STATS_LOCK_WAIT_SECONDS")
    if snapshot.generation is None:  # no generation to tell a flight from before a write: alone
        return _read_through_cache(snapshot, deadline)
    flight = (current_app._get_current_object(), str(snapshot.key), snapshot.generation)
    shared = _flights.share(flight, lambda: _read_through_cache(snapshot, deadline),
                            wait=max(deadline - time.monotonic(), 0.0))
    if shared is None:  # the one waited for failed or was slow: as if there had been none
        return _read_through_cache(snapshot, deadline)
    (outcome, entry), led = shared
    if led or outcome is Outcome.BYPASS:
        return outcome, entry
    return Outcome.HIT, entry


def _read_through_cache(snapshot: Snapshot, deadline: float) -> tuple[Outcome, Entry]:
    """One computation per key while the others poll the cache for its result until
    ``deadline``, else the database alone (cache unavailable, or the computing request slow or
    gone).

    The generation was read before the database, so counts computed from a snapshot older than
    a write are stored under the generation that write retired, and never served.
    """
    backend = stats_backend()
    key, tenant_id = str(snapshot.key), snapshot.tenant.id
    polls = 0
    while True:
        if polls % LOCK_RETRY_EVERY == 0:  # the holder may have failed to store its result
            with backend.lock(lock_key(key), timeout=_lock_timeout(), wait=0) as acquired:
                if acquired:
                    found = _lookup(tenant_id, key)
                    if found is None:
                        break
                    generation, entry = found
                    if entry is not None:
                        return Outcome.HIT, entry
                    return _compute_and_store(snapshot, generation or generations.publish_from_database(tenant_id))
        time.sleep(LOCK_POLL_SECONDS)
        polls += 1
        found = _lookup(tenant_id, key)
        if found is None:
            break
        if found[1] is not None:
            return Outcome.HIT, found[1]
        if time.monotonic() >= deadline:
            return _compute_and_store(snapshot, found[0] or generations.publish_from_database(tenant_id))
    return _compute_and_store(snapshot, None)  # the cache went away meanwhile


def _lookup(tenant_id: str, key: str) -> tuple[str | None, Entry | None] | None:
    """The generation and the entry if it is current; None if the cache could not be read."""
    values = stats_backend().fetch(generation_key(tenant_id), key)
    if values is None:
        return None
    generation, entry = generations.current(values[0]), Entry.from_stored(values[1])
    if generation is not None and entry is not None and entry.generation == generation:
        return generation, entry
    return generation, None


def _compute_and_store(snapshot: Snapshot, generation: str | None) -> tuple[Outcome, Entry]:
    """Compute; store under ``generation`` (None: the cache is not in use)."""
    entry = entries.compute(snapshot.key, snapshot.zone, generation)
    if generation is None:
        return Outcome.BYPASS, entry
    return (Outcome.MISS if entries.store(snapshot.key, entry) else Outcome.BYPASS), entry


def _prepare_tomorrow(snapshot: Snapshot) -> None:
    """After the answer: tomorrow's entry, if the key's moment before midnight has come. A
    failure is not the poll's: the next poll tries again."""
    try:
        midnight.prepare(snapshot.key, snapshot.zone, snapshot.generation, datetime.now(timezone.utc))
    except DATABASE_ERRORS:
        db.session.rollback()
