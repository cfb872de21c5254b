from __future__ import annotations

from flask.views import MethodView

from .. import idempotency
from ..schemas import PageQuerySchema, PatientCreateSchema, PatientPageSchema, PatientSchema
from ..services import patients
from ..tenancy import current_tenant
from . import ApiBlueprint

blp = ApiBlueprint("patients", __name__, url_prefix="/api/v1/patients", description="Patients.")


@blp.route("")
class Patients(MethodView):
    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, PatientPageSchema)
    def get(self, args):
        """List the tenant's patients."""
        return patients.list_patients(current_tenant().id, args["page"], args["page_size"])

    @blp.arguments(PatientCreateSchema())
    @idempotency.documented(blp)
    @blp.response(201, PatientSchema, headers=idempotency.REPLAYED_HEADER)
    def post(self, data):
        """Register a patient. Send an `Idempotency-Key` to make a retry safe."""
        return patients.add_patient(current_tenant().id, data["name"])
