"""Deterministic demo data, loaded in bulk (``flask seed`` is its command)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, insert, select

from ..extensions import db
from ..models import Appointment, Patient, Tenant
from ..models.appointment_count import adjust, bucket_of
from ..periods import parse_timezone
from .tenants import create_tenant

BATCH = 20_000
DAYS_BEFORE, DAYS_AFTER = 60, 90
STATUS_WEIGHTS = {"confirmed": 50, "pending": 35, "cancelled": 15}


def appointment_rows(
    tenant_id: str, patient_ids: list[int], count: int, tz_name: str, anchor: date, seed: int
) -> Iterator[dict]:
    """``count`` appointments from 60 days before ``anchor`` to 90 after, in local working
    hours (07:00-18:45, quarter hours). The same arguments always give the same rows."""
    rng = random.Random(seed)
    tz = parse_timezone(tz_name)
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    now = datetime.now(timezone.utc)
    for _ in range(count):
        day = anchor + timedelta(days=rng.randrange(-DAYS_BEFORE, DAYS_AFTER))
        local = datetime.combine(day, time(rng.randrange(7, 19), 15 * rng.randrange(4)), tzinfo=tz)
        yield {
            "tenant_id": tenant_id,
            "patient_id": rng.choice(patient_ids),
            "starts_at": local.astimezone(timezone.utc),
            "duration_min": rng.choice((15, 30, 30, 45, 60)),
            "status": rng.choices(statuses, weights)[0],
            "created_at": now,
            "updated_at": now,
        }


def seed_tenant(
    tenant_id: str,
    appointments: int,
    seed: int = 1,
    if_empty: bool = False,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Create the tenant if needed and bulk-insert patients and appointments; returns how
    many appointments were inserted (0 when ``if_empty`` and the tenant has some)."""
    tenant = db.session.get(Tenant, tenant_id) or create_tenant(tenant_id)
    if if_empty and db.session.scalar(
        select(func.count()).select_from(Appointment).where(Appointment.tenant_id == tenant_id)
    ):
        return 0
    rng = random.Random(seed)
    n_patients = max(5, min(appointments // 50, 20_000))
    db.session.execute(
        insert(Patient),
        [{"tenant_id": tenant_id, "name": f"Patient {rng.randrange(10**6):06d}"} for _ in range(n_patients)],
    )
    patient_ids = list(db.session.scalars(select(Patient.id).where(Patient.tenant_id == tenant_id)))
    anchor = datetime.now(parse_timezone(tenant.timezone)).date()
    rows = appointment_rows(tenant_id, patient_ids, appointments, tenant.timezone, anchor, seed)
    # Core bulk inserts fire no ORM events, so the rollup is adjusted here, once per bucket at
    # the end (not per batch: rewriting the same rows would bloat them on PostgreSQL), in the
    # same transaction.
    counts: Counter = Counter()
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        counts[(row["tenant_id"], bucket_of(row["starts_at"]), row["status"])] += 1
        if len(batch) == BATCH:
            db.session.execute(insert(Appointment.__table__), batch)
            progress(len(batch))
            batch = []
    if batch:
        db.session.execute(insert(Appointment.__table__), batch)
        progress(len(batch))
    adjust(db.session.connection(), counts)
    db.session.commit()
    return appointments
