"""A bare Flask app for the benchmark's other floor: one route returning a mega-stats-sized body,
with none of the app's hooks, served by the same gunicorn settings. ``bench.wsgi``'s floor route
lives inside the app and pays its request hooks; this one pays Flask alone, as the issue's
"bare Flask route" does."""

from __future__ import annotations

from flask import Flask, Response

from bench.floor import FLOOR_BODY

app = Flask("bare")


@app.get("/healthz")
def healthz() -> Response:
    return Response(b'{"status":"ok"}\n', mimetype="application/json")


@app.get("/bench/floor")
def floor() -> Response:
    return Response(FLOOR_BODY, mimetype="application/json",
                    headers={"Cache-Control": "no-store", "X-Cache": "FLOOR"})
