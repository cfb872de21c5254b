"""Single requests the harness makes itself: reading the cache metrics, the stampede, and the
fleet's polls and writes (``bench/dashboards.py`` schedules those).

The stampede needs something wrk cannot do: open 200 connections first and release all 200
requests at one instant, then read every answer's X-Cache. A barrier over plain
``http.client`` threads does that; it is a test client sending 200 requests once, not a load
generator (wrk does all the sustained load).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

METRICS_PATH = "/api/v1/appointments/cache-metrics"
METRIC_NAMES = ("computations", "hits", "misses", "bypasses", "stale", "db_statements")


@dataclass
class Answer:
    status: int  # 0: no answer (connection error or timeout)
    x_cache: str
    seconds: float
    error: str = ""
    etag: str = ""
    body: bytes = b""


def get(url: str, token: str | None = None, timeout: float = 10) -> Answer:
    return send(url, token, timeout=timeout)


def send(url: str, token: str | None = None, method: str = "GET", headers: dict[str, str] | None = None,
         payload: object = None, timeout: float = 10) -> Answer:
    """One request on a connection of its own (gunicorn's sync workers close it after each
    answer anyway); ``payload`` is sent as JSON. The answer keeps its ETag and body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.perf_counter()
    try:
        return _send(conn, _target(parts), token, started, method, headers, payload)
    finally:
        conn.close()


def metrics(base_url: str, admin_token: str) -> dict[str, int] | None:
    """The server's cache counters summed over its workers, or None while the endpoint does
    not answer them (absent, refused or malformed)."""
    data = summary(base_url, admin_token)
    try:
        return None if data is None else {name: int(data[name]) for name in METRIC_NAMES}
    except (ValueError, KeyError, TypeError):
        return None


def summary(base_url: str, admin_token: str) -> dict | None:
    """Everything cache-metrics answers (the streams' gauges among it), or None."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", METRICS_PATH, headers={"Authorization": f"Bearer {admin_token}"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        data = json.loads(body)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def metrics_delta(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int] | None:
    if before is None or after is None:
        return None
    return {name: after[name] - before[name] for name in METRIC_NAMES}


def burst(url: str, token: str, count: int, timeout: float = 30) -> list[Answer]:
    """``count`` requests on ``count`` connections opened beforehand, released together."""
    parts = urlsplit(url)
    target = _target(parts)
    barrier = threading.Barrier(count, timeout=timeout)
    answers: list[Answer | None] = [None] * count

    def one(index: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn = None
            error = f"connect: {type(exc).__name__}"
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            answers[index] = Answer(0, "", 0.0, "barrier broken")
            return
        if conn is None:
            answers[index] = Answer(0, "", 0.0, error)
            return
        try:
            answers[index] = _send(conn, target, token, time.perf_counter())
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 2 * timeout + 10
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [a if a is not None else Answer(0, "", 0.0, "no answer in time") for a in answers]


def _target(parts) -> str:
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _send(conn: http.client.HTTPConnection, target: str, token: str | None, started: float,
          method: str = "GET", extra: dict[str, str] | None = None, payload: object = None) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(extra or {})
    body = None
    if payload is not None:
        body = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return Answer(response.status, response.getheader("X-Cache", ""), time.perf_counter() - started,
                      etag=response.getheader("ETag", ""), body=data)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(0, "", time.perf_counter() - started, type(exc).__name__)
