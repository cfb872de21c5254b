"""Flush and commit the session, turning the database's refusals into ``Conflict``.

Either way, a refused write leaves nothing half-written: the session is rolled back before the
error is raised.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from ..extensions import db
from .exceptions import Conflict

CONFLICT = "The change conflicts with stored data."


def flush() -> None:
    """Send the pending writes (so new rows have their ids) without ending the transaction."""
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(CONFLICT) from exc


def commit(stale: str = "The row was changed or deleted meanwhile; reload it and retry.") -> None:
    """Commit; ``stale`` is the message when an optimistic lock found the row changed."""
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(CONFLICT) from exc
    except StaleDataError as exc:
        db.session.rollback()
        raise Conflict(stale) from exc


def rollback() -> None:
    db.session.rollback()
