"""The SQLAlchemy models, one module each."""

from .appointment import COUNTED_STATUSES, STATUSES, Appointment
from .patient import Patient
from .tenant import DEFAULT_TIMEZONE, TENANT_ID_PATTERN, Tenant

__all__ = ["Appointment", "Patient", "Tenant", "STATUSES", "COUNTED_STATUSES", "DEFAULT_TIMEZONE", "TENANT_ID_PATTERN"]
