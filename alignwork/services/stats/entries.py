"""What a stats key holds, and how one is computed and stored.

Shared by the poll's read-through (``stats.answer``), the pre-computation before midnight
(``midnight``) and the operators' view (``operators``): each computes or reads entries
the same way, whoever asks.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from flask import current_app

from ... import metrics
from ...cache.keys import StatsKey
from ...extensions import cache
from .query import Stats, compute_stats


@dataclass(frozen=True)
class Entry:
    """What a stats key holds. ``etag`` digests the tenant, zone, date and body, so it changes
    whenever the body would and never matches another tenant's, zone's or day's.
    ``precomputed``: computed before its zone's midnight, ahead of its date (``midnight``)."""

    generation: str
    stored_at: float  # epoch seconds
    etag: str
    body: bytes  # the JSON sent to the client, encoded once when computed
    precomputed: bool = False

    def as_stored(self) -> tuple:
        """Four fields as before, five only for a pre-computed entry: workers of the previous
        release, during a rolling deploy, read the entries the new ones compute on demand."""
        fields = (self.generation, self.stored_at, self.etag, self.body)
        return (*fields, True) if self.precomputed else fields

    @classmethod
    def from_stored(cls, value: object) -> Entry | None:
        if isinstance(value, tuple) and len(value) in (4, 5):
            return cls(*value)
        return None  # absent, or written by an older release

    def counts(self) -> Stats:
        return json.loads(self.body)


def compute(key: StatsKey, zone, generation: str | None, precomputed: bool = False) -> Entry:
    """The entry of ``key`` from the database, marked with the generation read before it."""
    with metrics.timed_computation():
        counts = compute_stats(key.tenant_id, zone, key.day)
    body = json.dumps(counts, separators=(",", ":")).encode() + b"\n"
    etag = hashlib.blake2b(f"{key}\n".encode() + body, digest_size=12).hexdigest()
    return Entry(generation or "", time.time(), etag, body, precomputed)


def store(key: StatsKey, entry: Entry) -> bool:
    """Whether the entry was stored (False: the cache was not used). It is kept past its safety
    net for ``CACHE_STALE_SECONDS``, to answer while the database is down."""
    config = current_app.config
    timeout = int(config["CACHE_DEFAULT_TIMEOUT"] + config["CACHE_STALE_SECONDS"])
    stored = cache.cache.store(str(key), entry.as_stored(), timeout)
    record_size()
    return stored


def record_size() -> None:
    backend = cache.cache
    if not backend.shared:
        metrics.CACHE_ENTRIES.set(backend.size())
