"""One error shape for the whole app, produced here and nowhere else::

    {"code": 404, "status": "Not Found", "message": "...", "errors": {"field": ["..."]}}

``errors`` appears when a particular input is at fault and names it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

from .auth import AuthError
from .extensions import db
from .idempotency import HEADER
from .services import health
from .services.exceptions import DATABASE_ERRORS, Conflict, NotFound, ServiceError, is_transient

log = logging.getLogger(__name__)

_SERVICE_STATUS = {NotFound: 404, Conflict: 409}


def error_response(
    status: int,
    message: str | None = None,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    name = HTTP_STATUS_CODES.get(status, "Error")
    payload: dict[str, Any] = {"code": status, "status": name, "message": message or name}
    if errors:
        payload["errors"] = errors
    response = jsonify(payload)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _flatten(messages: dict[str, Any]) -> dict[str, Any]:
    """webargs groups messages by location (``json``, ``query``); clients want the field."""
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def _http_error(error: HTTPException) -> Response:
    data = getattr(error, "data", None) or {}
    errors = _flatten(data["messages"]) if "messages" in data else data.get("errors")
    message = data.get("message")
    if message is None:
        message = "Invalid input." if errors else error.description
    headers = dict(data.get("headers") or {})
    if error.code == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return error_response(error.code or 500, message, errors, headers)


def _service_error(error: ServiceError) -> Response:
    status = next((code for cls, code in _SERVICE_STATUS.items() if isinstance(error, cls)), 400)
    errors = {error.field: [error.message]} if error.field else None
    return error_response(status, error.message, errors)


def _auth_error(error: AuthError) -> Response:
    headers = {}
    if error.status == 401:
        # RFC 6750: name the scheme; say the token was bad when one was sent.
        headers["WWW-Authenticate"] = (
            'Bearer realm="alignwork", error="invalid_token"'
            if request.headers.get("Authorization") else 'Bearer realm="alignwork"'
        )
    return error_response(error.status, error.message, headers=headers)


def _database_error(error: Exception) -> Response:
    """An unreachable or busy database (or a pool with no free connection) is a 503 to retry;
    so is a database not migrated to this release (its tables or columns missing), a 503 that
    names the fix. Any other database error is a bug, logged in full and answered 500.

    The schema is asked about only here, after a statement failed: a request that succeeds pays
    nothing for it, and once the schema is found ready the answer is kept (``services.health``)."""
    db.session.rollback()
    cause = getattr(error, "orig", None) or error
    if is_transient(error):
        log.warning("database unavailable or busy: %s: %s", type(cause).__name__, cause)
        return error_response(503, "The database is unavailable or busy; retry shortly." + _retry_advice(),
                              headers={"Retry-After": "1"})
    if (schema := health.schema_problem()) is not None:
        log.warning("database not ready: %s (%s): %s", schema.problem, schema.database, type(cause).__name__)
        return error_response(503, f"Not available: {schema.problem}; an operator must run "
                                   "`flask db upgrade`.", headers={"Retry-After": "30"})
    log.error("database error", exc_info=error)
    return error_response(500, InternalServerError.description)


def _retry_advice() -> str:
    """A write may have been committed although its answer failed (a lost acknowledgement):
    only a retry with the same key is sure not to apply it twice."""
    if request.method != "POST":
        return ""
    if request.headers.get(HEADER):
        return f" A retry with the same {HEADER} is safe: it is applied at most once."
    return f" The write may have been applied; send an {HEADER} to make retries safe."


def _unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return _http_error(error)
    log.exception("Unhandled error")
    return error_response(500, InternalServerError.description)


def init_app(app: Flask) -> None:
    """Register after flask-smorest's ``Api``, whose own HTTPException handler this replaces."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(AuthError, _auth_error)
    for kind in DATABASE_ERRORS:
        app.register_error_handler(kind, _database_error)
    app.register_error_handler(Exception, _unexpected)
