"""Stream tickets: for clients that must use ``EventSource``, which cannot send an
``Authorization`` header. A ticket stands for the token that asked for it, for one stream.

- **Single use across workers**: it is taken from the shared cache with one atomic read-and-delete
  (``GETDEL`` in Redis), so of any number of requests presenting it, at most one gets it.
- **Short-lived**: it lives ``STREAM_TICKET_SECONDS`` (at most 60), and never past its token.
- **Bound**: it carries the tenant and the token's issue and expiry times, so revoking the
  tenant's tokens refuses it and its stream ends when the token would have expired.

While the cache is unreachable no ticket is issued or redeemed (``TicketsUnavailable``, a 503):
a ticket that cannot be consumed atomically could be used twice. With ``SimpleCache`` a ticket is
good only in the process that issued it (one process, as that cache requires); ``NullCache``
holds none.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from flask import current_app

from ..cache.backend import CacheUnavailable, stats_backend
from ..cache.keys import ticket_key

MAX_SECONDS = 60


class TicketsUnavailable(Exception):
    """The cache that holds tickets could not be used."""


@dataclass(frozen=True)
class Ticket:
    """What a redeemed ticket says: whose it is, and the times of the token it stands for."""

    tenant_id: str
    issued_at: float
    expires_at: int


def issue(tenant_id: str, issued_at: float, expires_at: int) -> tuple[str, int]:
    """A new ticket for the token (``issued_at``, ``expires_at``) of ``tenant_id``, and its
    lifetime in seconds."""
    seconds = int(min(current_app.config["STREAM_TICKET_SECONDS"], MAX_SECONDS, expires_at - time.time()))
    secret = secrets.token_urlsafe(24)
    value = {"tenant": tenant_id, "iat": issued_at, "exp": expires_at, "until": time.time() + seconds}
    if seconds <= 0 or not stats_backend().store(ticket_key(secret), value, seconds):
        raise TicketsUnavailable()
    return secret, seconds


def redeem(secret: str) -> Ticket | None:
    """The ticket, now spent; None if unknown, spent or expired."""
    if not secret or len(secret) > 64:
        return None
    try:
        value = stats_backend().take(ticket_key(secret))
    except CacheUnavailable:
        raise TicketsUnavailable() from None
    if not isinstance(value, dict) or value.get("until", 0) <= time.time():
        return None  # the cache's expiry is in whole seconds: the ticket's own is exact
    return Ticket(value["tenant"], value["iat"], value["exp"])
