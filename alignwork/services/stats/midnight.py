"""Tomorrow's entries, ready before each zone's local midnight.

Stats keys carry the local date, so at a zone's midnight every open dashboard in that zone
would miss at once: a wave of computations for numbers nothing had changed (measured: 998 of
1,004 polls in the first 30 s, with AlignWork's tenants mostly in one zone). Instead, in the last
``STATS_PRECOMPUTE_SECONDS`` before a zone's midnight, a poll computes the entry its key will
need after midnight (same tenant and zone, the next local date) and stores it under the current
generation, so the first polls after midnight are hits.

- **Driven by polls**, not by a scheduler: only keys that dashboards are polling get an entry
  for tomorrow, no process has to know every tenant and zone, and nothing runs at night for a
  tenant nobody watches. A key is prepared once per generation (per process, a small memo; across
  processes the key's lock and a look at the entry).
- **Spread over the window**: each key has its own moment in it, a fixed offset from a hash of
  the key, and the first poll at or after that moment prepares it. Dashboards poll every 30 s,
  so the work is as spread as the keys' moments, and the moments end ``MARGIN_SECONDS`` before
  midnight so even a late poll is in time.
- **Correct as any entry**: the entry is computed for tomorrow's date and stored under tomorrow's
  key, which a poll reads only once its local date is tomorrow (DST nights included: midnight is
  ``periods.day_start``, the first instant of the date). The generation is read before the
  database, so a write after the pre-computation (or racing it) retires the entry like any
  other, and the first poll after midnight computes it afresh.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import current_app

from ... import metrics
from ...cache.keys import StatsKey, generation_key, lock_key
from ...cache.backend import stats_backend
from ...periods import day_start
from ..changes import generations
from . import entries
from ..exceptions import DATABASE_ERRORS
from .entries import Entry

#: Moments end this long before midnight: two polls of a dashboard polling every 30 s.
MARGIN_SECONDS = 60
MEMO_SIZE = 100_000
REST_SECONDS = 30

log = logging.getLogger(__name__)


class _Preparations:
    """Process-local memory of the pre-computation: which of tomorrow's keys were prepared under
    which generation (bounded, cleared when full), and until when the process rests after a
    database failure. Only an optimisation: across processes the key's lock and a look at the
    stored entry keep the work from being done twice."""

    def __init__(self, size: int = MEMO_SIZE):
        self.size = size
        self.resting_until = 0.0
        self._prepared: dict[str, str] = {}

    def under(self, name: str) -> str | None:
        return self._prepared.get(name)

    def remember(self, name: str, generation: str) -> None:
        if len(self._prepared) >= self.size:
            self._prepared.clear()
        self._prepared[name] = generation

    def resting(self) -> bool:
        return time.monotonic() < self.resting_until

    def rest(self) -> None:
        self.resting_until = time.monotonic() + REST_SECONDS


_preparations = _Preparations()


@lru_cache(maxsize=4096)
def _midnight(zone: ZoneInfo, day: date) -> datetime:
    """The first instant of the day after ``day`` in ``zone`` (UTC)."""
    return day_start(zone, day + timedelta(days=1))


def moment(key: StatsKey, zone: ZoneInfo, window: float) -> datetime:
    """When, before the midnight that ends ``key.day``, the key's entry for the next day is due:
    a fixed point of ``[midnight - window, midnight - MARGIN_SECONDS)`` chosen by the key."""
    span = max(window - MARGIN_SECONDS, 1.0)
    digest = hashlib.blake2b(str(key).encode(), digest_size=8).digest()
    offset = int.from_bytes(digest, "big") / 2**64 * span
    return _midnight(zone, key.day) - timedelta(seconds=window - offset)


def due(key: StatsKey, zone: ZoneInfo, now: datetime, window: float) -> StatsKey | None:
    """Tomorrow's key if ``now`` is at or past ``key``'s moment and before midnight, else None."""
    if window <= 0:
        return None
    midnight = _midnight(zone, key.day)
    if not midnight - timedelta(seconds=window) <= now < midnight or now < moment(key, zone, window):
        return None
    return replace(key, day=key.day + timedelta(days=1))


def window() -> float:
    """``STATS_PRECOMPUTE_SECONDS``, cut to the safety net (``CACHE_DEFAULT_TIMEOUT``): an entry
    computed earlier than that before midnight would be due, and recomputed, by the time it is
    read. So a per-process cache, whose safety net is 30 s, pre-computes nothing."""
    config = current_app.config
    seconds = min(config["STATS_PRECOMPUTE_SECONDS"], config["CACHE_DEFAULT_TIMEOUT"] - MARGIN_SECONDS)
    return seconds if seconds >= 2 * MARGIN_SECONDS else 0


def to_prepare(key: StatsKey, zone: ZoneInfo, generation: str | None, now: datetime) -> StatsKey | None:
    """Tomorrow's key if a poll of ``key`` answered under ``generation`` may have to prepare it
    (``prepare``'s cheap checks, no I/O): its moment has come, this process is not resting, and
    it has not prepared it under that generation already."""
    tomorrow = due(key, zone, now, window())
    if tomorrow is None or _preparations.resting() or _preparations.under(str(tomorrow)) == generation:
        return None
    return tomorrow


def prepare(key: StatsKey, zone: ZoneInfo, generation: str | None, now: datetime) -> bool:
    """Compute and store tomorrow's entry for ``key`` (a key a poll has just been answered for,
    under ``generation``) if its moment has come and it is not there yet; whether this call computed it. After a
    database failure here, this process rests ``REST_SECONDS``: a poll answered from the cache
    while the database is down must not try it again and again."""
    tomorrow = to_prepare(key, zone, generation, now)
    if tomorrow is None:
        return False
    backend = stats_backend()
    name = str(tomorrow)
    values = backend.fetch(generation_key(tomorrow.tenant_id), name)
    generation = generations.current(values[0]) if values is not None else None
    if generation is None or _preparations.under(name) == generation:
        return False
    computed = False
    with backend.lock(lock_key(name), timeout=10, wait=0) as acquired:
        held = Entry.from_stored(values[1])
        if acquired and (held is None or held.generation != generation):  # else: another has it, or does
            try:
                entry = entries.compute(tomorrow, zone, generation, precomputed=True)
            except DATABASE_ERRORS:
                _preparations.rest()
                log.warning("could not compute tomorrow's entries before midnight (database unavailable); "
                            "trying again in %d s", REST_SECONDS)
                raise
            computed = entries.store(tomorrow, entry)
            if computed:
                metrics.STATS_PRECOMPUTED.inc()
    _preparations.remember(name, generation)
    return computed
