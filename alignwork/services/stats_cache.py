"""Mega-stats served through the Flask-Caching ``cache``: keys, invalidation, one computation.

Keys are readable, so they can be listed and deleted per tenant on either backend::

    stats:<tenant>:<tz>:<local date>      ->  (generation, stats)
    gen:<tenant>                          ->  generation

The local date is taken in the requested zone, so an entry stops being used at that zone's
midnight. The generation is a random token per tenant, replaced after every committed write;
an entry counts only if it was computed under the current one. So a write retires every zone
and date of the tenant at once, without scanning keys, and a random token cannot come back
after an eviction or restart. Both keys are read in one round trip (``get_many``).

Why not ``@cache.memoize``: its keys are hashes of the arguments plus a version fetched on
every call (Flask-Caching 2.5 builds them internally and ignores a replaced
``make_cache_key``), so entries cannot be listed per tenant; and it cannot say whether a call
was a hit, hold a lock around the computation, or tell a miss from a cache outage. The same
``cache`` object is used here directly instead; backends are chosen by ``CACHE_TYPE`` as usual.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone

from flask import current_app

from .. import metrics
from ..cache_backends import CacheUnavailable, cache_unavailable
from ..extensions import cache
from ..periods import local_date, parse_timezone
from .stats import Stats, compute_stats

GENERATION_TTL = 7 * 24 * 3600
LOCK_POLL_SECONDS = 0.01
LOCK_RETRY_EVERY = 10  # polls: waiters look for the value often, try the lock seldom


class Outcome(str, enum.Enum):
    HIT = "HIT"
    MISS = "MISS"
    BYPASS = "BYPASS"


@dataclass(frozen=True)
class StatsKey:
    tenant_id: str
    tz_name: str
    day: date

    def __str__(self) -> str:
        return f"stats:{self.tenant_id}:{self.tz_name}:{self.day.isoformat()}"

    @classmethod
    def parse(cls, key: str) -> StatsKey | None:
        """The key's parts, or None for a key of another shape (an older release's)."""
        try:
            _, tenant_id, tz_name, day = key.split(":")
            return cls(tenant_id, tz_name, date.fromisoformat(day))
        except ValueError:
            return None


def tenant_pattern(tenant_id: str | None = None) -> str:
    """The key pattern of one tenant's entries, or of all entries."""
    return f"stats:{tenant_id}:*" if tenant_id else "stats:*"


def _generation_key(tenant_id: str) -> str:
    return f"gen:{tenant_id}"


def _new_generation(tenant_id: str) -> str:
    """Start a generation for a tenant that has none (first use, eviction, Redis restart)."""
    candidate = secrets.token_hex(6)
    if cache.add(_generation_key(tenant_id), candidate, timeout=GENERATION_TTL):
        return candidate
    return cache.get(_generation_key(tenant_id)) or candidate


def invalidate(tenant_id: str) -> None:
    """Retire every cached entry of the tenant. Call only after the write has committed.

    It is attempted even while this worker backs off from Redis. If the cache is really
    unreachable it does nothing and the write stands; entries written before the outage then
    live at most ``STATS_CACHE_TTL`` seconds.
    """
    cache.cache.set_ignoring_backoff(_generation_key(tenant_id), secrets.token_hex(6), GENERATION_TTL)


def _ttl() -> int:
    return int(current_app.config["STATS_CACHE_TTL"])


def get_stats(tenant_id: str, tz_name: str, now: datetime | None = None) -> tuple[Stats, Outcome]:
    """The tenant's stats in ``tz_name`` now, and whether the cache served them."""
    started = time.perf_counter()
    day = local_date(parse_timezone(tz_name), now or datetime.now(timezone.utc))
    reset = cache_unavailable.set(False)
    try:
        value, outcome = _read_through(tenant_id, str(StatsKey(tenant_id, tz_name, day)), tz_name, day)
    finally:
        cache_unavailable.reset(reset)
    metrics.record_lookup(outcome.value, time.perf_counter() - started)
    return value, outcome


def _lookup(tenant_id: str, key: str) -> tuple[str | None, Stats | None]:
    """The tenant's generation and the entry, if the entry was computed under it."""
    generation, entry = cache.get_many(_generation_key(tenant_id), key)
    if generation is not None and entry is not None and entry[0] == generation:
        return generation, entry[1]
    return generation, None


def _read_through(tenant_id: str, key: str, tz_name: str, day: date) -> tuple[Stats, Outcome]:
    """Cache, else one computation per key while the others poll for its result, else the
    database alone (cache unavailable, or the computing request slow or gone).

    The generation is read before the database, so counts computed from a snapshot older than
    a write are stored under the generation that write retired, and never served.
    """
    generation, value = _lookup(tenant_id, key)
    if value is not None:
        return value, Outcome.HIT
    wait = current_app.config["STATS_LOCK_WAIT_SECONDS"]
    deadline = time.monotonic() + wait
    polls = 0
    while not cache_unavailable.get():
        if polls % LOCK_RETRY_EVERY == 0:  # the holder may have failed to store its result
            with cache.cache.lock(key, timeout=max(wait, 1) * 2, wait=0) as acquired:
                if acquired:
                    generation, value = _lookup(tenant_id, key)  # stored meanwhile?
                    if value is not None:
                        return value, Outcome.HIT
                    return _compute_and_store(key, generation or _new_generation(tenant_id),
                                              tenant_id, tz_name, day)
        time.sleep(LOCK_POLL_SECONDS)
        polls += 1
        generation, value = _lookup(tenant_id, key)
        if value is not None:
            return value, Outcome.HIT
        if time.monotonic() >= deadline:
            break
    return _compute_and_store(key, generation or _new_generation(tenant_id), tenant_id, tz_name, day)


def _compute_and_store(key: str, generation: str, tenant_id: str, tz_name: str, day: date
                       ) -> tuple[Stats, Outcome]:
    with metrics.timed_computation():
        value = compute_stats(tenant_id, tz_name, day)
    cache.set(key, (generation, value), timeout=_ttl())
    backend = cache.cache
    if backend.counts_locally:
        metrics.CACHE_ENTRIES.set(len(backend))
    return value, Outcome.BYPASS if cache_unavailable.get() else Outcome.MISS


# -- inspection, for operators (flask shell, flask cache) -------------------------------------


@dataclass(frozen=True)
class Entry:
    key: StatsKey
    ttl: float | None
    current: bool  # computed under the tenant's current generation (others are never served)


@contextmanager
def _read_or_raise() -> Iterator[None]:
    """For operators' reads: the fail-open backend answers "nothing" when it cannot read, which
    must not pass for an empty cache, so that becomes ``CacheUnavailable``."""
    reset = cache_unavailable.set(False)
    try:
        yield
        if cache_unavailable.get():
            raise CacheUnavailable("the cache could not be read")
    finally:
        cache_unavailable.reset(reset)


def entries(tenant_id: str | None = None) -> list[Entry]:
    """This app's stats entries, optionally of one tenant, without touching any of them.
    Raises ``CacheUnavailable`` rather than report entries it could not read."""
    listed = [(StatsKey.parse(name), name, ttl)
              for name, ttl in cache.cache.keys_with_ttl(tenant_pattern(tenant_id))]
    listed = [(key, name, ttl) for key, name, ttl in listed if key is not None]
    keys = [key for key, _, _ in listed]
    tenants = sorted({key.tenant_id for key in keys})
    with _read_or_raise():
        values = cache.get_many(*(name for _, name, _ in listed), *map(_generation_key, tenants))
    generations = dict(zip(tenants, values[len(listed):]))
    return [
        Entry(key, ttl, value is not None and value[0] == generations[key.tenant_id])
        for (key, _, ttl), value in zip(listed, values)
    ]


def peek(tenant_id: str, tz_name: str, now: datetime | None = None) -> dict | None:
    """What a request would be served from the cache right now, or None; never computes.
    Raises ``CacheUnavailable`` rather than claim an unreachable cache holds nothing."""
    day = local_date(parse_timezone(tz_name), now or datetime.now(timezone.utc))
    key = str(StatsKey(tenant_id, tz_name, day))
    with _read_or_raise():
        _, value = _lookup(tenant_id, key)
    if value is None:
        return None
    return {"key": cache.cache.stored_key(key), "ttl": cache.cache.ttl(key), "value": value}


def clear(tenant_id: str | None = None) -> int:
    """Delete this app's stats entries (one tenant's, or all) and their generations.

    Only keys under this app's prefix are touched: a shared Redis is never flushed.
    """
    backend = cache.cache
    removed = backend.delete_matching(tenant_pattern(tenant_id))
    backend.delete_matching(f"gen:{tenant_id}" if tenant_id else "gen:*")
    if backend.counts_locally:
        metrics.CACHE_ENTRIES.set(len(backend))
    return removed


def cache_size() -> int | None:
    """Keys this app holds in the cache (entries, generation markers and any lock being held),
    over all workers; None when the cache cannot be reached."""
    backend = cache.cache
    if backend.counts_locally:
        metrics.CACHE_ENTRIES.set(len(backend))
        return metrics.summed_cache_entries()
    try:
        return len(backend)
    except CacheUnavailable:
        return None
