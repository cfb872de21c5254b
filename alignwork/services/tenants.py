"""Tenants: creation, renaming, listing, token revocation, and the record every API request reads.

The record (zone, token cut-off) lives in the cache under ``tenant:{id}``, so a poll reads it in
the same round trip as its stats and runs no SQL; the database is read only when the record is
missing. A change to a tenant, whoever commits it, advances the tenant's generation and rewrites
its record (``generations.py``): at once from this app's session, and within a second or two
from the change listener, which also reaches a per-process cache that a separate ``flask``
process cannot. The record's lifetime (at most ``LOCAL_RECORD_SECONDS`` in a per-process cache)
is only the safety net.
"""

from __future__ import annotations

import re
from dataclasses import astuple, dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from flask import current_app
from sqlalchemy import select

from ..cache.backend import stats_backend
from ..cache.keys import tenant_record_key
from ..extensions import db
from ..models import DEFAULT_TIMEZONE, TENANT_ID_PATTERN, Tenant
from ..periods import InvalidTimezone, parse_timezone
from .exceptions import Conflict, NotFound, ServiceError

LOCAL_RECORD_SECONDS = 30  # longest a revoked token is honoured where the cache is per process
NAME_LENGTH = Tenant.__table__.c.name.type.length

_TENANT_ID = re.compile(TENANT_ID_PATTERN)


# The cached record's formats, as for stats entries (``stats/entries.py``): 1 is the positional
# tuple of earlier releases, 2 named fields. This release reads both and writes 1.
WRITES_FORMAT = 1


@dataclass(frozen=True)
class TenantInfo:
    id: str
    name: str
    timezone: str
    tokens_revoked_at: float | None = None  # epoch seconds

    def as_stored(self, stored_format: int = WRITES_FORMAT) -> tuple | dict:
        if stored_format == 2:
            return {"format": 2, "id": self.id, "name": self.name, "timezone": self.timezone,
                    "tokens_revoked_at": self.tokens_revoked_at}
        return astuple(self)

    @classmethod
    def from_stored(cls, value: object) -> TenantInfo | None:
        """The tenant a cached record describes; None for no record, or a shape this release
        does not know (the record is then read from the database)."""
        if type(value) is tuple and len(value) == 4:
            return cls(*value)
        if isinstance(value, dict) and value.get("format") == 2:
            try:
                return cls(value["id"], value["name"], value["timezone"], value.get("tokens_revoked_at"))
            except KeyError:
                return None
        return None


def is_valid_tenant_id(tenant_id: object) -> bool:
    return isinstance(tenant_id, str) and bool(_TENANT_ID.fullmatch(tenant_id))  # "acme\n" too


def _info(tenant: Tenant) -> TenantInfo:
    revoked = tenant.tokens_revoked_at.timestamp() if tenant.tokens_revoked_at else None
    return TenantInfo(id=tenant.id, name=tenant.name, timezone=tenant.timezone, tokens_revoked_at=revoked)


def record_ttl() -> int:
    ttl = int(current_app.config["CACHE_DEFAULT_TIMEOUT"])
    return ttl if stats_backend().shared else min(ttl, LOCAL_RECORD_SECONDS)


def info_of_row(row) -> TenantInfo:
    """The record of a ``tenants`` row read with Core (a mapping with the table's columns)."""
    return _info(Tenant(**{column.key: row[column.key] for column in Tenant.__table__.columns}))


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
        stats_backend().create(tenant_record_key(tenant_id), info.as_stored(), record_ttl())
    return info


def get_tenant(tenant_id: str) -> TenantInfo:
    """The tenant, or ``NotFound``: from the cached record when there is one."""
    if not is_valid_tenant_id(tenant_id):
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
    found = stats_backend().fetch(tenant_record_key(tenant_id))
    return (found and TenantInfo.from_stored(found[0])) or load(tenant_id, remember=found is not None)


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
    tenant = Tenant(id=tenant_id, name=tenant_id if name is None else _display_name(name), timezone=timezone)
    db.session.add(tenant)
    db.session.commit()
    return _info(tenant)


def _display_name(name: str) -> str:
    """The name a dashboard heads its page with: free text, but one printable line (it is also
    a field of ``flask tenants list``'s tab-separated output) that fits its column."""
    name = name.strip()
    if not name or not name.isprintable():
        raise ServiceError("A tenant's name must be one line of printable text.", field="name")
    if len(name) > NAME_LENGTH:
        raise ServiceError(f"A tenant's name must be at most {NAME_LENGTH} characters.", field="name")
    return name


def rename_tenant(tenant_id: str, name: str) -> TenantInfo:
    """Change the name dashboards show. The commit reaches the cached record like any change to
    a tenant (``session_hooks``, then the change listener), so the next poll shows the name."""
    tenant = db.session.get(Tenant, tenant_id) if is_valid_tenant_id(tenant_id) else None
    if tenant is None:
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
    tenant.name = _display_name(name)
    db.session.commit()
    return _info(tenant)


def revoke_tokens(tenant_id: str) -> None:
    """Refuse every token issued until now. The commit reaches the cache like any change to a
    tenant: at once through this session (``session_hooks``), and through the change listener."""
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"Tenant {tenant_id!r} not found.", field="tenantId")
    tenant.tokens_revoked_at = datetime.now(dt_timezone.utc)
    db.session.commit()


def list_tenants() -> list[TenantInfo]:
    return [_info(t) for t in db.session.scalars(select(Tenant).order_by(Tenant.id))]
