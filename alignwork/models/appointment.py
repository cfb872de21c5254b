from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import UTCDateTime, utcnow

STATUSES = ("pending", "confirmed", "cancelled")
COUNTED_STATUSES = ("confirmed", "pending")


class Appointment(db.Model):
    __tablename__ = "appointments"
    __table_args__ = (
        # The patient must belong to the appointment's tenant, enforced by the database too.
        ForeignKeyConstraint(["tenant_id", "patient_id"], ["patients.tenant_id", "patients.id"]),
        CheckConstraint("duration_min BETWEEN 1 AND 1440", name="duration_range"),
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'cancelled')", name="status_known"
        ),
        # Serves the listing (by tenant, ordered by start) and the stats query's fallback,
        # a range scan per tenant that never touches the table.
        Index("ix_appointments_tenant_starts_status", "tenant_id", "starts_at", "status"),
        # SQLite would otherwise hand a deleted highest id to the next row, and a client still
        # holding the old id would edit someone else's appointment (PostgreSQL never reuses).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    patient_id: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_min: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Optimistic locking: an UPDATE or DELETE based on a stale read matches no row and fails,
    # so a write never silently overwrites a change its caller has not seen.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default=text("1"))

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<Appointment {self.id} {self.tenant_id} {self.starts_at:%Y-%m-%dT%H:%MZ} {self.status}>"
