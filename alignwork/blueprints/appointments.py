from __future__ import annotations

from flask.views import MethodView

from .. import idempotency
from ..schemas import (
    MAX_ID,
    AppointmentCreateSchema,
    AppointmentListQuerySchema,
    AppointmentPageSchema,
    AppointmentSchema,
    AppointmentUpdateSchema,
    TenantQuerySchema,
)
from ..services import appointments
from ..tenancy import current_tenant
from . import DEPRECATION_HEADERS, ApiBlueprint, deprecation_headers

blp = ApiBlueprint(
    "appointments", __name__, url_prefix="/api/v1/appointments", description="Appointments and their stats."
)

_UPDATE_FIELDS = {"status": "status", "startsAt": "starts_at", "durationMin": "duration_min"}


@blp.route("")
class Appointments(MethodView):
    @blp.arguments(AppointmentListQuerySchema(), location="query")
    @blp.response(200, AppointmentPageSchema, headers=DEPRECATION_HEADERS)
    def get(self, args):
        """List the tenant's appointments, ordered by start; ``from``/``to`` are ``[from, to)``."""
        page = appointments.list_appointments(
            current_tenant().id,
            page=args["page"],
            page_size=args["pageSize"],
            start=args.get("from_"),
            end=args.get("to"),
            status=args.get("status"),
        )
        return page, deprecation_headers(args)

    @blp.arguments(TenantQuerySchema(), location="query")
    @blp.arguments(AppointmentCreateSchema())
    @idempotency.documented(blp)
    @blp.response(201, AppointmentSchema, headers=idempotency.REPLAYED_HEADER)
    def post(self, _args, data):
        """Book an appointment for one of the tenant's patients. Send an `Idempotency-Key` to
        make a retry safe."""
        return appointments.add_appointment(
            current_tenant().id,
            patient_id=data["patientId"],
            starts_at=data["startsAt"],
            duration_min=data["durationMin"],
            status=data["status"],
        )


@blp.route(f"/<int(min=1, max={MAX_ID}):appointment_id>")
class AppointmentItem(MethodView):
    @blp.arguments(TenantQuerySchema(), location="query")
    @blp.response(200, AppointmentSchema)
    def get(self, _args, appointment_id):
        """One appointment of the tenant."""
        return appointments.get_appointment(current_tenant().id, appointment_id)

    @blp.arguments(TenantQuerySchema(), location="query")
    @blp.arguments(AppointmentUpdateSchema())
    @blp.response(200, AppointmentSchema)
    def patch(self, _args, data, appointment_id):
        """Change the status, start or duration of an appointment."""
        changes = {column: data[name] for name, column in _UPDATE_FIELDS.items() if name in data}
        return appointments.update_appointment(current_tenant().id, appointment_id, changes)

    @blp.arguments(TenantQuerySchema(), location="query")
    @blp.response(204)
    def delete(self, _args, appointment_id):
        """Delete an appointment."""
        appointments.delete_appointment(current_tenant().id, appointment_id)
