"""Request hooks that time every HTTP request into ``metrics.HTTP_*`` (by route template)."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from .metrics import HTTP_LATENCY, HTTP_REQUESTS


def _start_timer() -> None:
    g._metrics_started = time.perf_counter()


def observe(route: str, method: str, status: int, seconds: float) -> None:
    """One request into the HTTP series: the hooks' way, and the poll's fast path's."""
    HTTP_LATENCY.labels(route, method).observe(seconds)
    HTTP_REQUESTS.labels(route, method, str(status)).inc()


def _observe(response: Response) -> Response:
    started = g.pop("_metrics_started", None)
    if started is not None:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        observe(endpoint, request.method, response.status_code, time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_observe)
