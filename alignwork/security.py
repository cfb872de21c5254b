"""Request and response hardening that applies to every route."""

from __future__ import annotations

from flask import Flask, Response
from flask.sessions import SessionInterface


def _harden(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
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
