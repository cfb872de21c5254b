"""Who is calling and which tenant a request acts for: every API blueprint admits its callers
here, before any of its views runs, so a new view is protected without a line of its own.

The tenant comes from the bearer token. ``tenantId`` in the query (or the JSON body of a write)
is still accepted from the existing dashboard client: it must name the token's tenant.

Admission is one step per blueprint (``admit_tenant``, ``require_admin``): the token's signature
and expiry (no I/O), then the tenant record, which says whether the token was revoked. How the
record is read is the blueprint's choice: most read it alone (``read_record``); the stats
blueprint reads it in the same cache round trip as the poll's stats, and hands what it read to
its view. Views find the outcome in one typed object, ``current_admission()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import g, request

from .auth import ADMIN, AuthError, Claims, Principal, admit, authenticate, read_claims
from .services.exceptions import ServiceError
from .services.tenants import TenantInfo, get_tenant, is_valid_tenant_id

FIELD = "tenantId"
_WRITES = ("POST", "PUT", "PATCH")
_ADMISSION = "alignwork_admission"


@dataclass(frozen=True)
class Admission:
    """A request its blueprint admitted: who calls, and what the admission read on the way
    (``read``: the stats blueprint's snapshot; None elsewhere)."""

    principal: Principal
    read: Any = None

    @property
    def tenant(self) -> TenantInfo:
        return self.principal.tenant


#: A blueprint's way to read the tenant record of admitted claims: the record (None: no such
#: tenant) and anything read with it. It may refuse the request's input first (400, 403).
RecordReader = Callable[[Claims], "tuple[TenantInfo | None, Any]"]


def named_tenant_id() -> str | None:
    """The ``tenantId`` the request names, if any (400 when malformed or contradictory)."""
    in_query = request.args.get(FIELD)
    in_body = None
    if request.method in _WRITES and request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            in_body = body.get(FIELD)
    if in_query is not None and in_body is not None and in_query != in_body:
        raise ServiceError("tenantId in the query and in the body differ.", field=FIELD)
    named = in_body if in_body is not None else in_query
    if named is not None and not is_valid_tenant_id(named):
        raise ServiceError(
            "tenantId must be a slug of lower-case letters, digits and hyphens.", field=FIELD
        )
    return named


def check_named(claims: Claims, named: str | None) -> None:
    """403 unless ``named`` (the ``tenantId`` a request gives, if any) is the token's tenant."""
    if named is not None and named != claims.tenant_id:
        raise AuthError("tenantId does not match the token's tenant.", 403)


def read_record(claims: Claims) -> tuple[TenantInfo | None, None]:
    """The tenant record alone (cached; SQL only when missing)."""
    try:
        return get_tenant(claims.tenant_id), None
    except ServiceError:
        return None, None


def admit_tenant(read: RecordReader | None = None, claims: Claims | None = None) -> None:
    """``before_request`` of a tenant-scoped blueprint: the token, then its tenant's record
    (revocation), or a refusal (401/403/400). CORS preflights carry no token and pass.

    ``read``: the blueprint's own ``RecordReader``, which checks the request's named tenant
    itself; by default the record is read alone and the named tenant checked after the
    revocation. ``claims``: what stands for the token when the request carries none in its
    ``Authorization`` header (a stream ticket); by default the header's."""
    if request.method == "OPTIONS":
        return
    claims = claims or read_claims(request.headers.get("Authorization"))
    if claims.scope == ADMIN:
        raise AuthError("Admin tokens cannot act for a tenant; use the tenant's token.", 403)
    tenant, found = (read or read_record)(claims)
    if tenant is None:
        raise AuthError("Invalid token.")
    principal = admit(claims, tenant)
    if read is None:
        check_named(claims, named_tenant_id())
    setattr(g, _ADMISSION, Admission(principal, found))


def require_admin() -> None:
    """``before_request`` of operations endpoints: admin tokens only (a tenant token is read
    and admitted first, so a revoked one is a 401, as anywhere)."""
    principal = authenticate(request.headers.get("Authorization"))
    if principal.scope != ADMIN:
        raise AuthError("This endpoint needs an admin token.", 403)
    setattr(g, _ADMISSION, Admission(principal))


def current_admission() -> Admission:
    """What the blueprint's admission found; only views of an admitting blueprint call it."""
    return getattr(g, _ADMISSION)


def current_tenant() -> TenantInfo:
    return current_admission().tenant
