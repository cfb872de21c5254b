"""What the services raise; ``alignwork.errors`` turns each into one HTTP status."""

from __future__ import annotations


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
