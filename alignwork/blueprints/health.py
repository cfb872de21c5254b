"""Liveness and readiness probes, outside the tenant-scoped API."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import error_response
from ..extensions import db

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up and serving."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """The database answers; a load balancer should send no traffic until it does."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("readiness check failed: %s", type(exc).__name__)
        return error_response(503, "Database unreachable.")
    return jsonify(status="ready", database="ok")
