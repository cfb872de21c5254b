"""HTTP blueprints. Each parses input, calls a service and serialises: no SQL, no cache keys."""

from __future__ import annotations

from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser

from ..tenancy import resolve_tenant


class _Parser(FlaskParser):
    # Bad input is a 400 naming the field, as the dashboard client expects (not webargs' 422).
    DEFAULT_VALIDATION_STATUS = 400


class ApiBlueprint(Blueprint):
    """A tenant-scoped API blueprint: every request resolves its tenant before the view."""

    ARGUMENTS_PARSER = _Parser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.before_request(resolve_tenant)
