"""The benchmark's floor: a route with no auth, cache or database, so the HIT path can be
measured against the same app and server.

It lives with the benchmark, not in the package: ``bench.wsgi`` (what the benchmark's gunicorn
serves) and the in-process profile add it to an app the factory built as usual."""

from __future__ import annotations

from flask import Blueprint, Flask, Response

bp = Blueprint("bench", __name__)

# The size and shape of a mega-stats body, so both routes move the same bytes.
FLOOR_BODY = (
    b'{"today":{"confirmed":1234,"pending":567},"week":{"confirmed":12345,"pending":6789},'
    b'"month":{"confirmed":54321,"pending":9876},"nextMonth":{"confirmed":23456,"pending":7654}}\n'
)


@bp.get("/bench/floor")
def floor() -> Response:
    return Response(FLOOR_BODY, mimetype="application/json",
                    headers={"Cache-Control": "no-store", "X-Cache": "FLOOR"})


def with_floor(app: Flask) -> Flask:
    """The app, with ``/bench/floor`` added."""
    app.register_blueprint(bp)
    return app
