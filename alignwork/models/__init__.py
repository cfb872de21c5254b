"""The SQLAlchemy models, one module each."""

from .appointment import COUNTED_STATUSES, STATUSES, Appointment
from .appointment_count import AppointmentCount
from .idempotency_key import IdempotencyKey
from .patient import Patient
from .tenant import DEFAULT_TIMEZONE, TENANT_ID_PATTERN, Tenant
from .tenant_change import ChangeEpoch, TenantChange

__all__ = ["Appointment", "AppointmentCount", "IdempotencyKey", "Patient", "Tenant", "TenantChange", "ChangeEpoch", "STATUSES", "COUNTED_STATUSES", "DEFAULT_TIMEZONE", "TENANT_ID_PATTERN"]
