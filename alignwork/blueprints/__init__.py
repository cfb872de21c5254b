"""HTTP blueprints. Each parses input, calls a service and serialises: no SQL, no cache keys."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser

from ..errors import error_response
from ..tenancy import resolve_tenant


class _Parser(FlaskParser):
    # Bad input is a 400 naming the field, as the dashboard client expects (not webargs' 422).
    DEFAULT_VALIDATION_STATUS = 400


class ApiBlueprint(Blueprint):
    """An API blueprint whose every request is authenticated before the view: by default for
    a tenant (``tenancy.resolve_tenant``), or by the given ``scope`` hook."""

    ARGUMENTS_PARSER = _Parser()

    def __init__(self, *args, scope=resolve_tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.before_request(scope)
        self.before_request(_require_json_body)


def _require_json_body():
    if request.method in ("POST", "PUT", "PATCH") and not request.is_json:
        return error_response(415, "Send the body as JSON (Content-Type: application/json).")
    return None
