"""The tenant a token acts for: its name and time zone, which a dashboard heads its page with.

A separate endpoint rather than more fields in mega-stats, whose body existing clients parse as
it is; and a body rather than headers, since names are not ASCII. Authentication has already
read the tenant record from the cache (``tenancy.admit_tenant``), so the answer is that record
and costs no SQL while it is cached.
"""

from __future__ import annotations

from flask.views import MethodView

from ..schemas import TenantQuerySchema, TenantSchema
from ..services.tenants import TenantInfo
from ..tenancy import current_tenant
from . import ApiBlueprint

blp = ApiBlueprint("tenant", __name__, url_prefix="/api/v1/tenant",
                   description="The tenant a token acts for: its name and time zone.")


@blp.route("")
class CurrentTenant(MethodView):
    @blp.arguments(TenantQuerySchema(), location="query")
    @blp.response(200, TenantSchema)
    def get(self, args) -> TenantInfo:
        """The token's tenant (``tenantId``, if given, must name it): id, name and time zone."""
        return current_tenant()
