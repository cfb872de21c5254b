"""Appointments of a tenant. Their cached stats are invalidated by the session after each
commit (``services/changes/session_hooks.py``), not here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..models import Appointment
from . import transactions
from .exceptions import NotFound
from .pages import Page, paginate
from .patients import get_patient

UPDATABLE = ("status", "starts_at", "duration_min")


def _commit() -> None:
    transactions.commit(stale="The appointment was changed or deleted meanwhile; reload it and retry.")


def add_appointment(
    tenant_id: str, patient_id: int, starts_at: datetime, duration_min: int, status: str = "pending"
) -> Appointment:
    """Book an appointment in the caller's transaction: flushed, so it has its id, and left for
    the caller to commit (with the stored response of an idempotent request, for one)."""
    get_patient(tenant_id, patient_id, field="patientId")
    appointment = Appointment(
        tenant_id=tenant_id,
        patient_id=patient_id,
        starts_at=starts_at,
        duration_min=duration_min,
        status=status,
    )
    db.session.add(appointment)
    transactions.flush()
    return appointment


def create_appointment(
    tenant_id: str, patient_id: int, starts_at: datetime, duration_min: int, status: str = "pending"
) -> Appointment:
    """Book an appointment in a transaction of its own."""
    appointment = add_appointment(tenant_id, patient_id, starts_at, duration_min, status)
    _commit()
    return appointment


def get_appointment(tenant_id: str, appointment_id: int) -> Appointment:
    """The tenant's appointment; another tenant's id is reported exactly like a missing one."""
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None or appointment.tenant_id != tenant_id:
        raise NotFound(f"Appointment {appointment_id} not found.", field="id")
    return appointment


def list_appointments(
    tenant_id: str,
    page: int,
    page_size: int,
    start: datetime | None = None,
    end: datetime | None = None,
    status: str | None = None,
) -> Page:
    """The tenant's appointments with ``start <= starts_at < end``, ordered by start."""
    query = select(Appointment).where(Appointment.tenant_id == tenant_id)
    if start is not None:
        query = query.where(Appointment.starts_at >= start)
    if end is not None:
        query = query.where(Appointment.starts_at < end)
    if status is not None:
        query = query.where(Appointment.status == status)
    return paginate(query.order_by(Appointment.starts_at, Appointment.id), page, page_size)


def update_appointment(tenant_id: str, appointment_id: int, changes: dict[str, Any]) -> Appointment:
    appointment = get_appointment(tenant_id, appointment_id)
    for field in UPDATABLE:
        if field in changes:
            setattr(appointment, field, changes[field])
    _commit()
    return appointment


def delete_appointment(tenant_id: str, appointment_id: int) -> None:
    db.session.delete(get_appointment(tenant_id, appointment_id))
    _commit()
