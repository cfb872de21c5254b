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
from ...cache.backend import stats_backend
from .query import Stats, compute_stats


# Stored formats (expand, then contract): 1 is the positional tuple of earlier releases, 2 a
# mapping of named fields with its format number. This release reads both and writes 1, so the
# previous release, still serving during a rolling deploy, reads everything it writes; the next
# release writes 2, which this one already reads. A field added later with a default needs no
# new format number: readers ignore names they do not know.
WRITES_FORMAT = 1


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

    def as_stored(self, stored_format: int = WRITES_FORMAT) -> tuple | dict:
        """Format 1: four fields, five only for a pre-computed entry (releases before the
        pre-computation read four). Format 2: named fields."""
        if stored_format == 2:
            return {"format": 2, "generation": self.generation, "stored_at": self.stored_at,
                    "etag": self.etag, "body": self.body, "precomputed": self.precomputed}
        fields = (self.generation, self.stored_at, self.etag, self.body)
        return (*fields, True) if self.precomputed else fields

    @classmethod
    def from_stored(cls, value: object) -> Entry | None:
        """The entry a stored value describes; None for none, or a shape this release does not
        know (a newer format number): the poll then computes, as for a miss."""
        if type(value) is tuple and len(value) in (4, 5):
            return cls(*value)
        if isinstance(value, dict) and value.get("format") == 2:
            try:
                return cls(value["generation"], value["stored_at"], value["etag"], value["body"],
                           bool(value.get("precomputed", False)))
            except KeyError:
                return None
        return None

    def seconds_until_due(self) -> float:
        """The one due rule: an entry is due for a recompute ``CACHE_DEFAULT_TIMEOUT`` after it
        was stored (the safety net; freshness comes from generations). Negative once due."""
        return self.stored_at + current_app.config["CACHE_DEFAULT_TIMEOUT"] - time.time()

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
    stored = stats_backend().store(str(key), entry.as_stored(), timeout)
    record_size()
    return stored


def record_size() -> None:
    backend = stats_backend()
    if not backend.shared:
        metrics.CACHE_ENTRIES.set(backend.size())
