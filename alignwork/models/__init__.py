"""The SQLAlchemy models, one module each."""

from .appointment import COUNTED_STATUSES, STATUSES, Appointment
from .appointment_count import AppointmentCount
from .patient import Patient
from .tenant import DEFAULT_TIMEZONE, TENANT_ID_PATTERN, Tenant

__all__ = ["Appointment", "AppointmentCount", "Patient", "Tenant", "STATUSES", "COUNTED_STATUSES", "DEFAULT_TIMEZONE", "TENANT_ID_PATTERN"]
