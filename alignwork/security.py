"""Response headers every response carries, whatever produced it."""

from __future__ import annotations

from flask import Flask, Response


def _harden(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def init_app(app: Flask) -> None:
    app.after_request(_harden)
