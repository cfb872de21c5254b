"""Tenants: creation, listing, token revocation, and the record every API request reads.

The record (zone, token cut-off) lives in the cache under ``tenant:{id}``, so a poll reads it in
the same round trip as its stats and runs no SQL; the database is read only when the record is
missing. A change to a tenant is written through to the cache after it commits, so with Redis a
revocation reaches every worker on its next request. A per-process cache cannot be reached by a
separate ``flask`` process: there the record's lifetime (at most ``LOCAL_RECORD_SECONDS``)
bounds how long a revoked token keeps working.
"""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from flask import current_app
from sqlalchemy import select

from ..cache_keys import tenant_record_key
from ..extensions import cache, db
from ..models import DEFAULT_TIMEZONE, TENANT_ID_PATTERN, Tenant
from ..periods import InvalidTimezone, parse_timezone
from .exceptions import DATABASE_ERRORS, Conflict, NotFound, ServiceError

LOCAL_RECORD_SECONDS = 30  # longest a revoked token is honoured where the cache is per process

_TENANT_ID = re.compile(TENANT_ID_PATTERN)


@dataclass(frozen=True)
class TenantInfo:
    id: str
    name: str
    timezone: str
    tokens_revoked_at: float | None = None  # epoch seconds


def is_valid_tenant_id(tenant_id: object) -> bool:
    return isinstance(tenant_id, str) and bool(_TENANT_ID.match(tenant_id))


def _info(tenant: Tenant) -> TenantInfo:
    revoked = tenant.tokens_revoked_at.timestamp() if tenant.tokens_revoked_at else None
    return TenantInfo(id=tenant.id, name=tenant.name, timezone=tenant.timezone, tokens_revoked_at=revoked)


def record_key(tenant_id: str) -> str:
    return tenant_record_key(tenant_id)


def from_record(value: object) -> TenantInfo | None:
    """The tenant a cached record describes; None for no record (or one of another shape)."""
    if isinstance(value, tuple) and len(value) == 4:
        return TenantInfo(*value)
    return None


def _record_ttl() -> int:
    ttl = int(current_app.config["CACHE_DEFAULT_TIMEOUT"])
    return ttl if cache.cache.shared else min(ttl, LOCAL_RECORD_SECONDS)


def publish(info: TenantInfo) -> bool:
    """Write the record through to the cache (after a commit); False if the cache could not be
    written, in which case the old record lives until it expires."""
    return cache.cache.force_store(record_key(info.id), astuple(info), _record_ttl())


def refresh_record(tenant_id: str) -> None:
    """After a committed change to a tenant, write its new record through to the cache. (Only
    deleting it would let a request that read the row before the commit put the old record back.)
    If the row cannot be read now, the record is dropped and the next request reads the row."""
    try:
        publish(load(tenant_id, remember=False))
    except (NotFound, *DATABASE_ERRORS):
        cache.cache.delete(record_key(tenant_id))


def load(tenant_id: str, remember: bool = True) -> TenantInfo:
    """The tenant from the database (``NotFound`` if unknown), stored in the cache for the next
    request unless ``remember`` is False. Unknown tenants are never stored.

    Stored only if absent: a record published by a write that committed after this read must
    not be overwritten with the older row read here."""
    if not is_valid_tenant_id(tenant_id):
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
    # A connection of its own, returned at once: the session would keep one checked out for the
    # rest of the request, also while it waits for another request's stats.
    with db.engine.connect() as conn:
        row = conn.execute(select(Tenant.__table__).where(Tenant.id == tenant_id)).first()
    if row is None:
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
    info = _info(Tenant(**row._mapping))
    if remember:
        cache.cache.create(record_key(tenant_id), astuple(info), _record_ttl())
    return info


def get_tenant(tenant_id: str) -> TenantInfo:
    """The tenant, or ``NotFound``: from the cached record when there is one."""
    if not is_valid_tenant_id(tenant_id):
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
    found = cache.cache.fetch(record_key(tenant_id))
    return (found and from_record(found[0])) or load(tenant_id, remember=found is not None)


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


def revoke_tokens(tenant_id: str) -> int:
    """Refuse every token issued until now. Returns how many seconds the old tokens may still
    be honoured somewhere: 0 when the new cut-off reached a shared cache, otherwise the lifetime
    of the records the workers hold (per-process cache, or the cache unreachable)."""
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
    tenant.tokens_revoked_at = datetime.now(dt_timezone.utc)
    db.session.commit()
    if publish(_info(tenant)) and cache.cache.shared:
        return 0
    return _record_ttl()


def list_tenants() -> list[TenantInfo]:
    return [_info(t) for t in db.session.scalars(select(Tenant).order_by(Tenant.id))]
