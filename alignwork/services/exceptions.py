"""What the services raise; ``alignwork.errors`` turns each into one HTTP status."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class ServiceError(Exception):
    """Base class. ``field`` names the input at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    pass


# SQLSTATE classes meaning "try again": connection exceptions, operator intervention
# (shutdown), serialization failure, deadlock, statement timeout.
_TRANSIENT_SQLSTATES = ("08", "57P", "40001", "40P01", "57014")
_TRANSIENT_SQLITE = ("database is locked", "database table is locked", "unable to open database file")


#: What the database layer raises when a statement fails: the driver's errors, and the pool's
#: timeout when every connection is busy.
DATABASE_ERRORS = (DBAPIError, PoolTimeout)


def is_transient(error: Exception) -> bool:
    """Whether the database was unreachable or busy (worth a retry), not a bug such as a missed
    migration."""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate.startswith(_TRANSIENT_SQLSTATES)
    if hasattr(error.orig, "sqlstate"):  # psycopg, no server answer: could not connect
        return True
    return any(text in str(error.orig) for text in _TRANSIENT_SQLITE)
