"""Which tenant a request acts for: the one place every API request goes through.

Today the tenant is named by ``tenantId`` (query string, or JSON body on writes). Authentication
replaces this module's resolution, not the endpoints.
"""

from __future__ import annotations

from flask import g, request

from .services.exceptions import ServiceError
from .services.tenants import TenantInfo, get_tenant, is_valid_tenant_id

FIELD = "tenantId"


def _requested_tenant_id() -> str:
    in_query = request.args.get(FIELD)
    in_body = None
    if request.method in ("POST", "PUT", "PATCH") and request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            in_body = body.get(FIELD)
    if in_query is not None and in_body is not None and in_query != in_body:
        raise ServiceError("tenantId in the query and in the body differ.", field=FIELD)
    tenant_id = in_body if in_body is not None else in_query
    if tenant_id is None:
        raise ServiceError("tenantId is required.", field=FIELD)
    if not is_valid_tenant_id(tenant_id):
        raise ServiceError(
            "tenantId must be a slug of lower-case letters, digits and hyphens.", field=FIELD
        )
    return tenant_id


def resolve_tenant() -> None:
    """``before_request`` hook: sets ``g.tenant`` or fails with 400 (missing/bad) or 404."""
    if request.method == "OPTIONS":
        return
    g.tenant = get_tenant(_requested_tenant_id())


def current_tenant() -> TenantInfo:
    return g.tenant
