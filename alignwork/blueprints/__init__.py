"""HTTP blueprints. Each parses input, calls a service and serialises: no SQL, no cache keys."""

from __future__ import annotations

import re

from flask import request
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import BadRequest

from ..errors import error_response
from ..schemas import OLD_SPELLINGS
from ..tenancy import admit_tenant


class _Parser(FlaskParser):
    """webargs' parser, with bad input a 400 naming the field (as the dashboard client expects,
    not webargs' 422), a query that says only what the operation takes, and query strings
    parsed once per process.

    webargs ignores unknown query parameters by default, so a misspelt ``?pagesize=10`` or a
    parameter another operation takes would be dropped without a word: here they are a 400
    naming them. A repeated parameter is refused too, unless its field takes a list: webargs
    would hand the schema the first value and drop the others as silently.

    Every dashboard sends the same query string every 30 seconds, and parsing it through
    marshmallow is a sizeable share of a cached poll. A query schema's result depends only on the
    query string, so valid ones are remembered (a bounded, process-local table; invalid ones are
    never stored and are refused every time)."""

    DEFAULT_VALIDATION_STATUS = 400
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": RAISE, "querystring": RAISE}
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

    def remembered(self, schema: Schema, query_string: bytes) -> dict | None:
        """The arguments of a query string this parser has already accepted for ``schema``, or
        None (never parsed, or refused): the poll's fast path serves only such queries, so it
        refuses exactly what the schema refuses."""
        found = self._parsed_queries.get((schema, query_string))
        return None if found is None else dict(found)

    def load_querystring(self, req, schema):
        query = super().load_querystring(req, schema)
        known = {field.data_key or name for name, field in schema.load_fields.items()}
        repeated = {key: [f"Given {len(values)} times; give it once."] for key, values in req.args.lists()
                    if len(values) > 1 and key in known and key not in query.multiple_keys}
        if repeated:
            raise ValidationError(repeated)
        return query

    def load_json(self, req, schema):
        """The body as ``_require_json_body`` parsed and checked it (Flask keeps the parse), not
        parsed a second time."""
        return req.get_json() if is_json_request(req) else core.missing


class ApiBlueprint(Blueprint):
    """An API blueprint whose every request is admitted before any of its views runs: by
    default as a tenant's (``tenancy.admit_tenant``), or by the given ``admit`` hook. A view
    added later is protected without a line of its own. A write's body is checked first
    (``_require_json_body``), since admission reads ``tenantId`` from it."""

    ARGUMENTS_PARSER = _Parser()

    def __init__(self, *args, admit=admit_tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.before_request(_require_json_body)
        self.before_request(admit)

    def _store_endpoint_docs(self, endpoint, obj, parameters, tags, **options):
        """The views' docstrings are reStructuredText, as every docstring here, and become the
        operations' summary and description, which Swagger UI renders as Markdown: ``x`` is
        written `x` there (Markdown shows double backticks literally).

        Parameters given to ``blp.doc`` (the ``Idempotency-Key`` header) join those of
        ``blp.arguments``: flask-smorest would let them replace the list, and with it the
        query parameters the operation takes."""
        super()._store_endpoint_docs(endpoint, obj, parameters, tags, **options)
        for doc in self._docs[endpoint].values():
            if isinstance(doc, dict) and "docstring" in doc:
                doc["docstring"] = {key: _markdown_code(text) for key, text in doc["docstring"].items()}
            if isinstance(doc, dict) and "parameters" in doc.get("manual_doc", {}) and "arguments" in doc:
                doc["arguments"]["parameters"] += doc["manual_doc"].pop("parameters")


# Where a client reads what replaces a deprecated spelling, and until when it is accepted.
DEPRECATION_LINK = '</docs/api.md>; rel="deprecation"; type="text/markdown"'
DEPRECATION_HEADERS = {
    "Deprecation": {"description": "`true` when the request used a deprecated spelling (`page_size`): "
                                   "it goes in the next release.",
                    "schema": {"type": "string", "enum": ["true"]}},
    "Link": {"description": "With Deprecation: where the deprecation is explained (`rel=\"deprecation\"`).",
             "schema": {"type": "string"}},
}


def deprecation_headers(args: dict) -> dict[str, str]:
    """The headers that tell a client its request used a spelling that goes in the next release
    (RFC 9745's ``Deprecation``, with a ``Link`` to why), or none."""
    if not args.get(OLD_SPELLINGS):
        return {}
    return {"Deprecation": "true", "Link": DEPRECATION_LINK}


_RST_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)


def _markdown_code(text: str) -> str:
    return _RST_LITERAL.sub(r"`\1`", text)


_WRITES = ("POST", "PUT", "PATCH")
# No body this API takes nests deeper than an object of scalars; the bound leaves room to grow.
MAX_BODY_DEPTH = 32


def _require_json_body():
    """A write's body is JSON, parsed here once, before anything reads it: Flask keeps the
    parse, so authentication (``tenantId``) and the view's arguments share it.

    Python's JSON parser recurses once per level of nesting, so a 2 KB body nested a thousand
    deep raises ``RecursionError`` (a 500), and one that just parses would trip the next
    recursive walk over it instead. Such a body is refused like a malformed one: a 400 naming
    the body."""
    if request.method not in _WRITES:
        return None
    if not request.is_json:
        return error_response(415, "Send the body as JSON (Content-Type: application/json).")
    try:
        too_deep = _nested_deeper_than(request.get_json(), MAX_BODY_DEPTH)
    except BadRequest:
        return error_response(400, "The body is not valid JSON.", {"json": ["Invalid JSON body."]})
    except RecursionError:
        too_deep = True
    if too_deep:
        return error_response(400, f"The JSON body is nested more than {MAX_BODY_DEPTH} levels deep.",
                              {"json": [f"Nested more than {MAX_BODY_DEPTH} levels deep."]})
    return None


def _nested_deeper_than(value, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` levels in ``value``; iterative, since
    a recursive walk is what such a body breaks."""
    pending = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
