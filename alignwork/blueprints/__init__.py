"""HTTP blueprints. Each parses input, calls a service and serialises: no SQL, no cache keys."""

from __future__ import annotations

import re

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema
from webargs.flaskparser import FlaskParser

from ..errors import error_response
from ..tenancy import admit_tenant


class _Parser(FlaskParser):
    """webargs' parser, with bad input a 400 naming the field (as the dashboard client expects,
    not webargs' 422), and query strings parsed once per process.

    Every dashboard sends the same query string every 30 seconds, and parsing it through
    marshmallow is a sizeable share of a cached poll. A query schema's result depends only on the
    query string, so valid ones are remembered (a bounded, process-local table; invalid ones are
    never stored and are refused every time)."""

    DEFAULT_VALIDATION_STATUS = 400
    MEMO_SIZE = 4096

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._parsed_queries: dict[tuple[Schema, bytes], dict] = {}

    def parse(self, argmap, req=None, *, location=None, **kwargs):
        if location != "query" or kwargs.get("validate") is not None or not isinstance(argmap, Schema):
            return super().parse(argmap, req, location=location, **kwargs)
        key = (argmap, (req or request).query_string)
        found = self._parsed_queries.get(key)
        if found is None:
            found = super().parse(argmap, req, location=location, **kwargs)
            if len(self._parsed_queries) >= self.MEMO_SIZE:
                self._parsed_queries.clear()
            self._parsed_queries[key] = found
        return dict(found)


class ApiBlueprint(Blueprint):
    """An API blueprint whose every request is admitted before any of its views runs: by
    default as a tenant's (``tenancy.admit_tenant``), or by the given ``admit`` hook. A view
    added later is protected without a line of its own."""

    ARGUMENTS_PARSER = _Parser()

    def __init__(self, *args, admit=admit_tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.before_request(admit)
        self.before_request(_require_json_body)

    def _store_endpoint_docs(self, endpoint, obj, parameters, tags, **options):
        """The views' docstrings are reStructuredText, as every docstring here, and become the
        operations' summary and description, which Swagger UI renders as Markdown: ``x`` is
        written `x` there (Markdown shows double backticks literally)."""
        super()._store_endpoint_docs(endpoint, obj, parameters, tags, **options)
        for doc in self._docs[endpoint].values():
            if isinstance(doc, dict) and "docstring" in doc:
                doc["docstring"] = {key: _markdown_code(text) for key, text in doc["docstring"].items()}


_RST_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)


def _markdown_code(text: str) -> str:
    return _RST_LITERAL.sub(r"`\1`", text)


def _require_json_body():
    if request.method in ("POST", "PUT", "PATCH") and not request.is_json:
        return error_response(415, "Send the body as JSON (Content-Type: application/json).")
    return None
