"""Request hooks that time every HTTP request into ``metrics.HTTP_*`` (by route template)."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from .metrics import HTTP_LATENCY, HTTP_REQUESTS


def _start_timer() -> None:
    g._metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("_metrics_started", None)
    if started is not None:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_LATENCY.labels(endpoint, request.method).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_observe)
