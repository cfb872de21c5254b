"""Liveness and readiness probes, outside the tenant-scoped API."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from ..errors import error_response
from ..services import health

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

UPGRADE = "run `flask db upgrade`"


@bp.get("/healthz")
def healthz():
    """The process is up and serving."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """The database answers, at this release's schema or a later one; a load balancer should
    send no traffic until it does."""
    readiness = health.readiness()
    if not readiness.reachable:
        log.warning("readiness check failed: %s", readiness.error)
        return error_response(503, "Database unreachable.")
    if not readiness.ready:
        return error_response(503, f"Not ready: {readiness.schema.problem}; {UPGRADE}.")
    return jsonify(status="ready", database="ok")
