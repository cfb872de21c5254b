"""Request and response hardening: headers on every response, and the stricter policy of the
HTML pages (the dashboard and the operator page)."""

from __future__ import annotations

from flask import Flask, Response
from flask.sessions import SessionInterface

# The pages load their scripts, styles and data from the app itself and nothing else: no inline
# script or style, no other origin, no framing, no plugins, no <base> or form tricks.
PAGE_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# The API docs (/api/docs): the same, but Swagger UI's stylesheet draws its icons as data: URIs.
DOCS_POLICY = PAGE_POLICY.replace("img-src 'self'", "img-src 'self' data:")


#: What every response carries (``_harden``; the poll's fast path appends the same).
HARDENING = (("X-Content-Type-Options", "nosniff"),)


def _harden(response: Response) -> Response:
    for name, value in HARDENING:
        response.headers.setdefault(name, value)
    return response


def protect_page(response: Response, policy: str = PAGE_POLICY) -> Response:
    """``after_request`` of the HTML pages. The token sits in the URL fragment or sessionStorage,
    never in a URL a Referer could carry; no-referrer keeps even the page's address private."""
    response.headers["Content-Security-Policy"] = policy
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


class NoSessions(SessionInterface):
    """The API is stateless (bearer tokens, no cookies): no session cookie is ever read or set.
    Flask's default would also build a signing serializer on every request."""

    def open_session(self, app, request):
        return None  # Flask then uses its null session, which refuses writes

    def save_session(self, app, session, response):
        return None


def init_app(app: Flask) -> None:
    app.session_interface = NoSessions()
    app.after_request(_harden)
