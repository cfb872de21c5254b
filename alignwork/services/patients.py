"""Patients of a tenant."""

from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import Patient
from . import transactions
from .exceptions import NotFound
from .pages import Page, paginate


def add_patient(tenant_id: str, name: str) -> Patient:
    """Register a patient in the caller's transaction: flushed, so it has its id, and left for
    the caller to commit."""
    patient = Patient(tenant_id=tenant_id, name=name)
    db.session.add(patient)
    transactions.flush()
    return patient


def create_patient(tenant_id: str, name: str) -> Patient:
    """Register a patient in a transaction of its own."""
    patient = add_patient(tenant_id, name)
    transactions.commit()
    return patient


def get_patient(tenant_id: str, patient_id: int, field: str = "id") -> Patient:
    """The tenant's patient; another tenant's id is reported exactly like a missing one."""
    patient = db.session.get(Patient, patient_id)
    if patient is None or patient.tenant_id != tenant_id:
        raise NotFound(f"Patient {patient_id} not found.", field=field)
    return patient


def list_patients(tenant_id: str, page: int, page_size: int) -> Page:
    query = select(Patient).where(Patient.tenant_id == tenant_id).order_by(Patient.id)
    return paginate(query, page, page_size)
