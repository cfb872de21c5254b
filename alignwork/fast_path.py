"""The poll's fast path: a mega-stats HIT or 304 answered without building a Flask request.

Dashboards poll every 30 seconds and almost every poll is a HIT or a 304, yet the full path
pays for Werkzeug's request, the request hooks, flask-smorest's and webargs' wrappers and the
response object around a single cache read. This WSGI layer, installed on the app by
``create_app`` (``app.wsgi_app``), answers such a poll from what is already known to be valid
and leaves everything else to the full path, unchanged:

- the query string must be one the full path has already accepted (``remembered_query``), so
  nothing is parsed here and nothing is refused here;
- the token must be one whose signature has already been checked (``VerifiedTokens``); expiry,
  scope, the named tenant and revocation are checked as the admission does;
- the stats must be servable with nothing else to do (``answer.read_served``: current, not due,
  no pending invalidation, no preparation for midnight), in one cache round trip.

Any doubt, and the request goes to the full path, which gives the same answer or the error.
The answer's headers come from ``stats_headers.py``, as the view's do, with the CORS and
hardening headers the hooks would add; the metrics record it as the hooks and ``answer`` would.
``tests/test_fast_path.py`` proves the two paths byte-equal on the same inputs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone

from flask import Flask
from werkzeug.http import parse_etags

from . import http_metrics, metrics
from .auth import TENANT, AuthError, admit, claims_of
from .blueprints.stats import POLL_PATH, remembered_query
from .services.stats import answer as stats_answer
from .stats_headers import answer_headers, body_headers, fast_path_tail
from .tenancy import check_named

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]
_BEARER = "Bearer "


class PollFastPath:
    """WSGI middleware over the app's own ``wsgi_app``; ``full`` is the path it falls back to."""

    def __init__(self, app: Flask, full: WsgiApp):
        self.app = app
        self.full = full
        self._tokens = app.extensions["alignwork.verified_tokens"]
        self._failed_once = False

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == POLL_PATH and environ.get("REQUEST_METHOD") == "GET":
            try:
                answered = self._answer(environ)
            except Exception:  # noqa: BLE001 - the full path answers, and reports, whatever it is
                if not self._failed_once:
                    self._failed_once = True
                    log.exception("the poll's fast path failed; polls take the full path meanwhile")
                answered = None
            if answered is not None:
                status, headers, body = answered
                start_response(status, headers)
                return body
        return self.full(environ, start_response)

    def _answer(self, environ: dict) -> tuple[str, list[tuple[str, str]], list[bytes]] | None:
        started = time.perf_counter()
        if "HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK" in environ:
            return None
        args = remembered_query(environ.get("QUERY_STRING", "").encode("latin-1"))
        header = environ.get("HTTP_AUTHORIZATION", "")
        if args is None or not header.startswith(_BEARER):
            return None
        found = self._tokens.remembered(header[len(_BEARER):].strip())
        if found is None:
            return None
        try:
            claims = claims_of(found)
            check_named(claims, args.get("tenantId"))
        except AuthError:
            return None
        if claims.scope != TENANT:
            return None
        with self.app.app_context():
            snapshot = stats_answer.read_served(claims.tenant_id, args.get("tz"), datetime.now(timezone.utc))
            if snapshot is None:
                return None
            try:
                admit(claims, snapshot.tenant)
            except AuthError:
                return None
            entry = snapshot.entry
            metrics.record_lookup(stats_answer.Outcome.HIT.value, time.perf_counter() - started)
            if entry.precomputed:
                metrics.STATS_PRECOMPUTED_HITS.inc()
            tail = fast_path_tail(self.app, environ.get("HTTP_ORIGIN"))
        headers = answer_headers("HIT", entry.etag, snapshot.zone.key, snapshot.day)
        if _matches(environ.get("HTTP_IF_NONE_MATCH"), entry.etag):
            status, code, body = "304 NOT MODIFIED", 304, []
        else:
            status, code, body = "200 OK", 200, [entry.body]
            headers += body_headers(entry.body)
        headers += tail
        http_metrics.observe(POLL_PATH, "GET", code, time.perf_counter() - started)
        return status, headers, body


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names the entry, compared weakly as the full path does; the
    dashboard's usual header (the tag it was given) without parsing."""
    if not if_none_match:
        return False
    if if_none_match == f'W/"{etag}"':
        return True
    return parse_etags(if_none_match).contains_weak(etag)


def init_app(app: Flask) -> None:
    """Install the fast path in front of the app's WSGI callable (``STATS_FAST_PATH``)."""
    if app.config.get("STATS_FAST_PATH", True):
        app.wsgi_app = PollFastPath(app, app.wsgi_app)
