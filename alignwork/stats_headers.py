"""The headers of a mega-stats answer, in one place for the view and the poll's fast path
(``fast_path.py``), so the two cannot drift: a client gets the same bytes from either (a test
compares them).

The view's response gets the CORS and hardening headers from the app's hooks; the fast path, which
answers without them, appends the same values in the same order (``fast_path_tail``).
"""

from __future__ import annotations

from datetime import date

from flask import Flask

from .cors import simple_request_headers
from .security import HARDENING

# The browser keeps the body but asks every time; a 304 costs no computation.
CACHE_CONTROL = "private, no-cache"
JSON = "application/json"


def answer_headers(outcome: str, etag: str, zone: str, day: date, age: int | None = None) -> list[tuple[str, str]]:
    """X-Cache, Cache-Control, the weak ETag naming the body, the zone and local date the
    numbers are for, and ``Age`` for a STALE answer; a 304 carries the same."""
    headers = [("X-Cache", outcome), ("Cache-Control", CACHE_CONTROL), ("ETag", f'W/"{etag}"'),
               ("X-Stats-Zone", zone), ("X-Stats-Local-Date", day.isoformat())]
    if age is not None:
        headers.append(("Age", str(age)))
    return headers


def body_headers(body: bytes) -> list[tuple[str, str]]:
    """What Werkzeug adds to a 200 with a body, in its order."""
    return [("Content-Type", JSON), ("Content-Length", str(len(body)))]


def fast_path_tail(app: Flask, origin: str | None) -> tuple[tuple[str, str], ...]:
    """What the app's ``after_request`` hooks add to an answer, in their order: flask-cors's
    headers for the request's origin (none without one), then the hardening headers."""
    return simple_request_headers(app)(origin) + HARDENING
