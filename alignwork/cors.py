"""Cross-origin access to the API, for dashboards served from another origin.

flask-cors does the header work. It is configured here, and nowhere else, so that:

- only ``/api/v1/…`` answers cross-origin requests, and only for ``CORS_ORIGINS``
  (validated at start-up by ``config.check_cors_origins``: literal origins only, since
  flask-cors would take a string holding ``*?[]()^$`` for a regular expression and match it as
  a prefix);
- no credentials: tokens travel in the ``Authorization`` header, never in cookies;
- a request without ``Origin`` (same-origin, curl) gets no CORS headers at all (flask-cors'
  ``always_send`` would otherwise list every allowed origin on it);
- a dashboard can read ``X-Cache`` and ``ETag`` and send ``If-None-Match``, and read
  ``X-Stats-Zone`` and ``X-Stats-Local-Date`` (what mega-stats' numbers are for, on its 304s too);
- a dashboard resuming its stream can send ``Last-Event-ID``;
- a client can send ``Idempotency-Key`` with a write and read ``Idempotent-Replayed`` on the
  answer (whether it is the replay of an earlier one with that key);
- a preflight is answered before authentication: a browser never sends the token with it, so
  the admin-only endpoints would otherwise refuse it with a 401 and the real request would never
  be made.
"""

from __future__ import annotations

from flask import Flask, request
from flask_cors.core import get_cors_headers, get_cors_options

from .extensions import cors

API_PATHS = r"^/api/v1/.*"
METHODS = ["GET", "POST", "PATCH", "DELETE"]
REQUEST_HEADERS = ["Authorization", "Content-Type", "If-None-Match", "Idempotency-Key", "Last-Event-ID"]
EXPOSED_HEADERS = ["X-Cache", "ETag", "Retry-After", "WWW-Authenticate", "X-Stats-Zone", "X-Stats-Local-Date",
                   "Idempotent-Replayed"]
# Lets a dashboard polling every 30 s skip the preflight most of the time (Chromium caps it at 2 h).
PREFLIGHT_MAX_AGE = 600


def _is_api_preflight() -> bool:
    return (
        request.method == "OPTIONS"
        and request.path.startswith("/api/v1/")
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


def _answer_preflight(app: Flask):
    def answer():
        if _is_api_preflight():
            # flask-cors adds the Access-Control-* headers to this response, or none if the
            # origin is not allowed (the browser then refuses the request).
            return app.make_default_options_response()
        return None

    return answer


def _settings(origins: list[str]) -> dict:
    return dict(
        resources=API_PATHS,
        origins=origins,
        send_wildcard=origins == ["*"],
        methods=METHODS,
        allow_headers=REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        supports_credentials=False,
        max_age=PREFLIGHT_MAX_AGE,
        always_send=False,
        allow_private_network=False,
    )


class SimpleRequestHeaders:
    """The CORS headers flask-cors adds to a simple API request (a GET, no private-network
    question) from each origin, worked out by flask-cors itself from the same settings and
    remembered per origin: the poll's fast path appends them without a request context."""

    MEMO_SIZE = 256

    def __init__(self, app: Flask, origins: list[str]):
        self._options = get_cors_options(app, _settings(origins)) if origins else None
        self._by_origin: dict[str | None, tuple[tuple[str, str], ...]] = {}

    def __call__(self, origin: str | None) -> tuple[tuple[str, str], ...]:
        found = self._by_origin.get(origin)
        if found is None:
            found = ()
            if self._options is not None and origin is not None:
                found = tuple((k, str(v)) for k, v in get_cors_headers(self._options, {"Origin": origin}, "GET")
                              .items(multi=True))
            if len(self._by_origin) >= self.MEMO_SIZE:
                self._by_origin.clear()
            self._by_origin[origin] = found
        return found


def simple_request_headers(app: Flask) -> SimpleRequestHeaders:
    return app.extensions["alignwork.cors_headers"]


def init_app(app: Flask) -> None:
    origins = list(app.config["CORS_ORIGINS"])
    app.extensions["alignwork.cors_headers"] = SimpleRequestHeaders(app, origins)
    if not origins:
        return
    cors.init_app(app, **_settings(origins))
    app.before_request(_answer_preflight(app))
