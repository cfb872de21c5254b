from __future__ import annotations

from flask.views import MethodView

from .. import idempotency
from ..schemas import (
    PageQuerySchema,
    PatientCreateSchema,
    PatientPageSchema,
    PatientSchema,
    TenantQuerySchema,
)
from ..services import patients
from ..tenancy import current_tenant
from . import DEPRECATION_HEADERS, ApiBlueprint, deprecation_headers

blp = ApiBlueprint("patients", __name__, url_prefix="/api/v1/patients", description="Patients.")


@blp.route("")
class Patients(MethodView):
    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, PatientPageSchema, headers=DEPRECATION_HEADERS)
    def get(self, args):
        """List the tenant's patients."""
        page = patients.list_patients(current_tenant().id, args["page"], args["pageSize"])
        return page, deprecation_headers(args)

    @blp.arguments(TenantQuerySchema(), location="query")
    @blp.arguments(PatientCreateSchema())
    @idempotency.documented(blp)
    @blp.response(201, PatientSchema, headers=idempotency.REPLAYED_HEADER)
    def post(self, _args, data):
        """Register a patient. Send an `Idempotency-Key` to make a retry safe."""
        return patients.add_patient(current_tenant().id, data["name"])
