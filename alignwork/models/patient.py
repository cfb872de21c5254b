from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import UTCDateTime, utcnow


class Patient(db.Model):
    __tablename__ = "patients"
    # Target of the appointments' composite foreign key, which keeps a patient in its tenant.
    # (Ids are never reused on SQLite either, as for appointments.)
    __table_args__ = (UniqueConstraint("tenant_id", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<Patient {self.id} of {self.tenant_id}>"
