"""The names of everything this app keeps in the cache, in one place.

Every key of a tenant carries the tenant id as a Redis Cluster hash tag (``{tenant}``), so a
tenant's record, generation and stats entries share one slot and the read of a poll stays one
``MGET`` on a cluster too; different tenants spread over the nodes. Keys stay readable, so
operators can list and delete them per tenant by pattern::

    tenant:{<tenant>}                       ->  the tenant record (zone, token cut-off)
    gen:{<tenant>}                          ->  the tenant's current generation (epoch:version)
    stats:{<tenant>}:<zone>:<local date>    ->  a stats entry
    lock:stats:{<tenant>}:<zone>:<date>     ->  held while one request computes that entry
    ticket:<secret>                         ->  a stream ticket: tenant, token's iat and exp (single use)
    changes:feed                            ->  a stream of changed tenant ids, an entry each time a
                                                write brings a tenant's generation to the cache
                                                (about the newest 10,000 kept): where stream
                                                watchers learn what changed (``feed.py``)
    streams:{<tenant>}                      ->  the tenant's open streams on every worker (a sorted
                                                set: stream id -> when its hold runs out)
    listener:reconcile-asks                 ->  workers back from an outage ask for a catch-up (a set
                                                of request ids)
    listener:reconciled-asks                ->  the listener's answers: request id -> server run_id

Flask-Caching puts ``CACHE_KEY_PREFIX`` in front of each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_STATS = re.compile(r"^stats:\{([^{}]+)\}:([^:]+):(\d{4}-\d{2}-\d{2})$")


CHANGES_FEED = "changes:feed"
FEED_KEPT = 10_000
RECONCILE_ASKS = "listener:reconcile-asks"
RECONCILED_ASKS = "listener:reconciled-asks"


def tenant_record_key(tenant_id: str) -> str:
    return f"tenant:{{{tenant_id}}}"


def generation_key(tenant_id: str) -> str:
    return f"gen:{{{tenant_id}}}"


def streams_key(tenant_id: str) -> str:
    return f"streams:{{{tenant_id}}}"


def ticket_key(secret: str) -> str:
    return f"ticket:{secret}"


def lock_key(key: str) -> str:
    return "lock:" + key


@dataclass(frozen=True)
class StatsKey:
    tenant_id: str
    tz_name: str
    day: date

    def __str__(self) -> str:
        return f"stats:{{{self.tenant_id}}}:{self.tz_name}:{self.day.isoformat()}"

    @classmethod
    def parse(cls, key: str) -> StatsKey | None:
        """The key's parts, or None for a key of another shape (an older release's)."""
        match = _STATS.match(key)
        if match is None:
            return None
        try:
            return cls(match[1], match[2], date.fromisoformat(match[3]))
        except ValueError:
            return None


def stats_pattern(tenant_id: str | None = None) -> str:
    """The glob of one tenant's stats entries, or of all of them."""
    return f"stats:{{{tenant_id}}}:*" if tenant_id else "stats:*"


def generation_pattern(tenant_id: str | None = None) -> str:
    return generation_key(tenant_id) if tenant_id else "gen:*"


def tenant_record_pattern(tenant_id: str | None = None) -> str:
    return tenant_record_key(tenant_id) if tenant_id else "tenant:*"
