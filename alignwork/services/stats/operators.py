"""Looking inside the stats cache, for operators (``flask cache``, the shell's ``stats``, the
metrics): listing, peeking and clearing entries without computing anything.

An unreachable cache is reported as ``CacheUnavailable``, never as an empty one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from ... import metrics
from ...cache.backend import CacheUnavailable, stats_backend  # (CacheUnavailable: for the commands too)
from ...cache.keys import StatsKey, generation_key, generation_pattern, stats_pattern, tenant_record_pattern
from ...periods import local_date
from ..changes.generations import current
from .entries import Entry, record_size


@dataclass(frozen=True)
class Listed:
    key: StatsKey
    ttl: float | None  # seconds until the entry is due for a recompute (its safety TTL)
    current: bool  # computed under the tenant's current generation (others are never served)


def _strict_fetch(*keys: str) -> list:
    """For operators: an unreachable cache must not pass for an empty one."""
    values = stats_backend().fetch(*keys)
    if values is None:
        raise CacheUnavailable("the cache could not be read")
    return values


def entries(tenant_id: str | None = None) -> list[Listed]:
    """This app's stats entries, optionally of one tenant, without touching any of them."""
    listed = [(StatsKey.parse(name), name)
              for name, _ in stats_backend().keys_with_ttl(stats_pattern(tenant_id))]
    listed = [(key, name) for key, name in listed if key is not None]
    if not listed:
        return []
    tenant_ids = sorted({key.tenant_id for key, _ in listed})
    values = _strict_fetch(*(name for _, name in listed), *map(generation_key, tenant_ids))
    held = dict(zip(tenant_ids, map(current, values[len(listed):])))
    result = []
    for (key, _), value in zip(listed, values):
        entry = Entry.from_stored(value)
        if entry is not None:  # else it expired between the listing and the read
            result.append(Listed(key, max(0.0, entry.seconds_until_due()), entry.generation == held[key.tenant_id]))
    return result


def peek(tenant_id: str, zone: ZoneInfo, now: datetime | None = None) -> dict | None:
    """What a poll would be served from the cache right now, or None; never computes."""
    day = local_date(zone, now or datetime.now(timezone.utc))
    key = str(StatsKey(tenant_id, zone.key, day))
    generation, stored = _strict_fetch(generation_key(tenant_id), key)
    entry = Entry.from_stored(stored)
    if entry is None or entry.generation != current(generation):
        return None
    return {"key": stats_backend().stored_key(key), "ttl": max(0.0, entry.seconds_until_due()), "value": entry.counts(),
            "etag": entry.etag}


def clear(tenant_id: str | None = None) -> int:
    """Delete this app's stats entries (one tenant's, or all), their generations and tenant
    records, so that the next poll reads everything from the database (after a change made with
    ``psql``, say). Only keys under this app's prefix are touched: a shared Redis is never
    flushed. Returns how many stats entries were removed."""
    backend = stats_backend()
    removed = backend.delete_matching(stats_pattern(tenant_id))
    backend.delete_matching(generation_pattern(tenant_id))
    backend.delete_matching(tenant_record_pattern(tenant_id))
    record_size()
    return removed


def cache_is_shared() -> bool:
    """Whether this process sees the cache the server uses (a per-process cache it cannot)."""
    return stats_backend().shared


def cache_size() -> int | None:
    """Keys this app holds in the cache over all workers; None when the cache cannot be reached."""
    backend = stats_backend()
    if not backend.shared:
        metrics.CACHE_ENTRIES.set(backend.size())
        return metrics.summed_cache_entries()
    try:
        return backend.size()
    except CacheUnavailable:
        return None
