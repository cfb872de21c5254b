"""The responses of writes sent with an ``Idempotency-Key``, kept so a retry is answered, not
applied again (``services/idempotency.py``, ``alignwork/idempotency.py``).

A row is written in the same transaction as the resource it answers for: either both are
committed or neither is, so a retry after a lost acknowledgement finds the key exactly when the
resource exists, on any worker and after any restart.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import UTCDateTime, utcnow

MAX_KEY_LENGTH = 255


class IdempotencyKey(db.Model):
    __tablename__ = "idempotency_keys"

    # A key is the client's, and clients are tenants: the same key from two tenants is two keys.
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    # Names the request (method, path, validated body): the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    def __repr__(self) -> str:
        return f"<IdempotencyKey {self.tenant_id} {self.key!r} {self.status}>"
