from __future__ import annotations

from flask.views import MethodView

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
    @blp.response(201, PatientSchema)
    def post(self, data):
        """Register a patient."""
        return patients.create_patient(current_tenant().id, data["name"])
