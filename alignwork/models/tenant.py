from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import UTCDateTime, utcnow

DEFAULT_TIMEZONE = "America/Recife"
# A slug: lower-case letters, digits and inner hyphens, at most 64 characters.
TENANT_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Tokens issued at or before this instant are refused (``flask tenants revoke-tokens``).
    tokens_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def __repr__(self) -> str:
        return f"<Tenant {self.id} {self.timezone}>"
