"""Who is calling and which tenant a request acts for: every API request goes through here.

The tenant comes from the bearer token. ``tenantId`` in the query (or the JSON body of a write)
is still accepted from the existing dashboard client: it must name the token's tenant.

Most endpoints resolve the tenant before the view (``resolve_tenant``). The stats endpoint
checks only the token's signature before the view (``resolve_claims``) and admits the tenant
once its record has arrived with the stats, in one cache round trip (``admit_tenant``).
"""

from __future__ import annotations

from flask import g, request

from .auth import ADMIN, AuthError, Principal, admit, authenticate, read_claims
from .services.exceptions import ServiceError
from .services.tenants import TenantInfo, is_valid_tenant_id

FIELD = "tenantId"
_WRITES = ("POST", "PUT", "PATCH")


def _named_tenant_id() -> str | None:
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


def _principal() -> Principal:
    principal = authenticate(request.headers.get("Authorization"))
    g.principal = principal
    return principal


def resolve_tenant() -> None:
    """``before_request`` of the tenant-scoped API: sets ``g.tenant`` or refuses (401/403/400)."""
    if request.method == "OPTIONS":
        return
    principal = _principal()
    if principal.scope == ADMIN:
        raise AuthError("Admin tokens cannot act for a tenant; use the tenant's token.", 403)
    named = _named_tenant_id()
    if named is not None and named != principal.tenant.id:
        raise AuthError("tenantId does not match the token's tenant.", 403)
    g.tenant = principal.tenant


def resolve_claims() -> None:
    """``before_request`` of the stats endpoint: a valid tenant token, or a refusal (401/403).
    No I/O: the revocation check waits for ``admit_tenant``."""
    if request.method == "OPTIONS":
        return
    claims = read_claims(request.headers.get("Authorization"))
    if claims.scope == ADMIN:
        raise AuthError("Admin tokens cannot act for a tenant; use the tenant's token.", 403)
    g.claims = claims


def claimed_tenant_id(named: str | None) -> str:
    """The token's tenant; ``named`` is the ``tenantId`` the view parsed, if any (403 if another)."""
    if named is not None and named != g.claims.tenant_id:
        raise AuthError("tenantId does not match the token's tenant.", 403)
    return g.claims.tenant_id


def admit_tenant(tenant: TenantInfo | None) -> None:
    """Finish what ``resolve_claims`` began, with the tenant record (None: unknown tenant)."""
    if tenant is None:
        raise AuthError("Invalid token.")
    g.principal = admit(g.claims, tenant)
    g.tenant = tenant


def require_admin() -> None:
    """``before_request`` of operations endpoints: admin tokens only."""
    if _principal().scope != ADMIN:
        raise AuthError("This endpoint needs an admin token.", 403)


def current_tenant() -> TenantInfo:
    return g.tenant
