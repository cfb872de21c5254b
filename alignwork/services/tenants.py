"""Tenants: creation, listing, token revocation, and the lookup every API request makes.

The lookup is memoised per process (``TenantMemo``) so that a cached stats request runs no SQL
while the memo is fresh. The memo's lifetime is also how long a worker may keep honouring a
token after ``revoke_tokens``, hence its bound of 30 seconds.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import DEFAULT_TIMEZONE, TENANT_ID_PATTERN, Tenant
from ..periods import InvalidTimezone, parse_timezone
from .exceptions import Conflict, NotFound, ServiceError

_TENANT_ID = re.compile(TENANT_ID_PATTERN)


@dataclass(frozen=True)
class TenantInfo:
    id: str
    name: str
    timezone: str
    tokens_revoked_at: float | None = None  # epoch seconds


class TenantMemo:
    """Process-local, per-app memo of known tenants: bounded LRU with a time-to-live.

    Unknown ids are never stored, so probing random ids cannot grow it.
    """

    def __init__(self, ttl: float, size: int = 10_000):
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, TenantInfo]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tenant_id: str) -> TenantInfo | None:
        with self._lock:
            entry = self._entries.get(tenant_id)
            if entry is None or entry[0] < time.monotonic():
                return None
            self._entries.move_to_end(tenant_id)
            return entry[1]

    def put(self, info: TenantInfo) -> None:
        with self._lock:
            self._entries[info.id] = (time.monotonic() + self.ttl, info)
            self._entries.move_to_end(info.id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, tenant_id: str) -> None:
        with self._lock:
            self._entries.pop(tenant_id, None)


def _memo() -> TenantMemo:
    return current_app.extensions["alignwork.tenant_memo"]


def is_valid_tenant_id(tenant_id: object) -> bool:
    return isinstance(tenant_id, str) and bool(_TENANT_ID.match(tenant_id))


def _info(tenant: Tenant) -> TenantInfo:
    revoked = tenant.tokens_revoked_at.timestamp() if tenant.tokens_revoked_at else None
    return TenantInfo(id=tenant.id, name=tenant.name, timezone=tenant.timezone, tokens_revoked_at=revoked)


def get_tenant(tenant_id: str) -> TenantInfo:
    """The tenant, or ``NotFound``; served from the memo when possible."""
    if not is_valid_tenant_id(tenant_id):
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
    info = _memo().get(tenant_id)
    if info is None:
        # A connection of its own, returned at once: the session would keep one checked out
        # for the rest of the request, also while it waits for another request's stats.
        with db.engine.connect() as conn:
            row = conn.execute(select(Tenant.__table__).where(Tenant.id == tenant_id)).first()
        if row is None:
            raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
        info = _info(Tenant(**row._mapping))
        _memo().put(info)
    return info


def create_tenant(tenant_id: str, name: str | None = None, timezone: str = DEFAULT_TIMEZONE) -> TenantInfo:
    if not is_valid_tenant_id(tenant_id):
        raise ServiceError(
            "Tenant id must be a slug: lower-case letters, digits and inner hyphens, at most 64.",
            field="tenantId",
        )
    try:
        parse_timezone(timezone)
    except InvalidTimezone as exc:
        raise ServiceError(str(exc), field="timezone") from exc
    if db.session.get(Tenant, tenant_id) is not None:
        raise Conflict(f"Tenant {tenant_id!r} already exists.", field="tenantId")
    tenant = Tenant(id=tenant_id, name=name or tenant_id, timezone=timezone)
    db.session.add(tenant)
    db.session.commit()
    return _info(tenant)


def revoke_tokens(tenant_id: str) -> None:
    """Refuse every token issued until now; other processes notice within their memo TTL."""
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
    tenant.tokens_revoked_at = datetime.now(dt_timezone.utc)
    db.session.commit()
    _memo().forget(tenant_id)


def list_tenants() -> list[TenantInfo]:
    return [_info(t) for t in db.session.scalars(select(Tenant).order_by(Tenant.id))]


def init_app(app) -> None:
    app.extensions["alignwork.tenant_memo"] = TenantMemo(ttl=app.config["TENANT_MEMO_SECONDS"])
