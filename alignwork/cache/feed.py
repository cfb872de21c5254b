"""The changes feed on Redis: a stream of the tenant ids whose generations were written, read by
every process's stream watcher (``services/stats/stream_hub.py``) from where it last read.

Why a stream, and not a key every write replaces or a pub/sub channel: a watcher must read the
generations of the tenants that changed, not of every tenant it watches, and must know when it
cannot tell which changed. A stream's entry ids only grow, so a reader that reads from its last
entry *inclusive* sees that entry come back first, or knows that entries went missing (a
FLUSHALL, trimming, an expired feed, a failover to a replica that lacked it); pub/sub loses what
is published while a subscription reconnects, without a trace. Entries lost after a surviving
one (a failover's asynchronous replication) leave no trace either: the watcher's periodic full
look is the bound on those.

One entry per tenant, so the entry an idle reader reads back each look stays small. Ids and
fields come back as bytes: the app's Redis clients never decode responses
(``redis_settings.py`` refuses ``decode_responses``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

_TENANT = "t"


@dataclass(frozen=True)
class FeedRead:
    """What a read found past a position: the tenants announced since, or None when that cannot
    be told (a first read, a gap, more than was asked for), in which case the reader looks at
    every tenant it watches; and the position to read from next ('' for "the feed was empty")."""

    position: str
    tenants: frozenset[str] | None


def append(client: Any, name: str, tenant_ids: Collection[str], keep: int, ttl: int) -> None:
    """One round trip: an entry per tenant, trimmed approximately to about ``keep`` (which costs
    Redis nothing until a whole node of entries is full), and the feed's expiry renewed."""
    pipe = client.pipeline(transaction=False)
    for tenant_id in tenant_ids:
        pipe.xadd(name, {_TENANT: tenant_id}, maxlen=keep, approximate=True)
    pipe.expire(name, ttl)
    pipe.execute()


def read(client: Any, name: str, position: str | None, most: int) -> FeedRead:
    """The tenants announced after ``position`` (None: never read), if at most ``most`` of them.
    One round trip when they can be told (an idle read returns the entry at ``position`` alone);
    one more, for the newest entry, when they cannot, so the next read starts from now instead
    of working through a backlog."""
    if position is None:
        return FeedRead(_newest(client, name), None)
    # From the position itself, so that its absence shows; then up to ``most`` entries past it,
    # and one more, whose presence says there were more than ``most``. (From an empty feed's
    # position, '', every entry is new, and the extra one changes nothing.)
    entries = client.xrange(name, position or "-", "+", count=most + 2)
    if position:
        if not entries or _id(entries[0]) != position:
            return FeedRead(_newest(client, name), None)
        entries = entries[1:]
    if not entries:
        return FeedRead(position, frozenset())
    if len(entries) > most:
        return FeedRead(_newest(client, name), None)
    return FeedRead(_id(entries[-1]), frozenset(fields[_TENANT.encode()].decode() for _, fields in entries))


def _newest(client: Any, name: str) -> str:
    newest = client.xrevrange(name, "+", "-", count=1)
    return _id(newest[0]) if newest else ""


def _id(entry: tuple[bytes, dict]) -> str:
    return entry[0].decode()
