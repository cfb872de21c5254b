"""Prometheus metrics, summed over every gunicorn worker.

Under gunicorn, ``gunicorn.conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports
this module: each worker then writes its samples to files there, and a scrape (``/metrics``) or
``cache-metrics`` reads them all, so the numbers describe the whole server rather than the worker
that happened to answer. Without it (tests, ``flask shell``) they describe this process.

The metric objects are process-wide by design (prometheus_client keeps them in a registry);
labels are bounded: route templates, never raw paths, and never tenant ids. This module knows
nothing of requests, so services may import it: the request hooks are in ``http_metrics.py``
and the operator endpoints in ``blueprints/operations.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from sqlalchemy import event

if _MULTIPROC_DIR := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)  # the metric objects below open files there

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "alignwork_http_requests_total", "HTTP requests by route, method and status.",
    ["endpoint", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "alignwork_http_request_duration_seconds", "HTTP request latency by route.",
    ["endpoint", "method"], buckets=_FAST,
)
STATS_LOOKUPS = Histogram(
    "alignwork_stats_lookup_seconds", "Mega-stats lookups by cache outcome (HIT, MISS, BYPASS, STALE).",
    ["outcome"], buckets=_FAST,
)
STATS_COMPUTATIONS = Histogram(
    "alignwork_stats_computation_seconds", "Time to compute one tenant's stats from the database.",
    buckets=_FAST,
)
STATS_PRECOMPUTED = Counter(
    "alignwork_stats_precomputed_total",
    "Entries computed before their zone's local midnight, for the next day (services/stats/midnight.py).",
)
STATS_PRECOMPUTED_HITS = Counter(
    "alignwork_stats_precomputed_hits_total", "Polls answered from an entry computed before midnight.",
)
DB_STATEMENTS = Counter(
    "alignwork_db_statements_total", "SQL statements sent to the database (a cached poll sends none).",
)
CACHE_ENTRIES = Gauge(
    "alignwork_cache_entries", "Entries in the in-process caches of live workers.",
    multiprocess_mode="livesum",
)
CACHE_LOCKS_LOST = Counter(
    "alignwork_cache_locks_lost_total",
    "Computation locks gone before their release (FLUSHALL, eviction, a computation outlasting the "
    "lock): another computation may have run beside one; not an outage.",
)
CACHE_UNRECONCILED = Counter(
    "alignwork_cache_unreconciled_total",
    "Times a worker served from a Redis server again after an outage without a listener having "
    "reconciled it (none answered within the wait; cache/reconciliation.py).",
)

# The change listener's state (services/changes/listener.py), readable from any process.
LISTENER_RUNNING = Gauge(
    "alignwork_listener_running", "Change listeners running in live processes.", multiprocess_mode="livesum",
)
LISTENER_CONNECTED = Gauge(
    "alignwork_listener_connected", "Change listeners connected to the database.", multiprocess_mode="livesum",
)
LISTENER_LEADING = Gauge(
    "alignwork_listener_leading", "Change listeners applying changes (the others wait their turn).",
    multiprocess_mode="livesum",
)
# The lease that elects the leader on a shared cache (services/changes/election.py), as the cache
# last told any listener: every listener asks it once a tick, so a frozen leader shows here as a
# lease growing old, then as another pid.
LISTENER_LEADER_PID = Gauge(
    "alignwork_listener_leader_pid", "The process id of the listener holding the lease (0: none).",
    multiprocess_mode="livemostrecent",
)
LISTENER_LEASE_AGE = Gauge(
    "alignwork_listener_lease_age_seconds", "Seconds since the leader last renewed its lease.",
    multiprocess_mode="livemostrecent",
)
LISTENER_TAKEOVERS = Counter(
    "alignwork_listener_takeovers_total", "Times a listener began to lead (took the lease).",
)
LISTENER_FENCED = Counter(
    "alignwork_listener_fenced_writes_total",
    "Generation writes a listener did not make because it found its lease taken by another.",
)
LISTENER_LAST_APPLIED = Gauge(
    "alignwork_listener_last_applied_timestamp_seconds", "When a listener last wrote a change to the cache.",
    multiprocess_mode="max",
)
LISTENER_LAG = Histogram(
    "alignwork_listener_lag_seconds",
    "From a change's statement in the database to the listener writing it to the cache (changes "
    "the app's own session had already written are not counted).",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0),
)

# Live dashboards (services/stats/stream_hub.py).
STREAMS_OPEN = Gauge(
    "alignwork_streams_open", "Open mega-stats streams in live processes.", multiprocess_mode="livesum",
)
STREAMS_REFUSED = Counter(
    "alignwork_streams_refused_total", "Streams refused at a cap (process: 503, tenant: 429).", ["reason"],
)
STREAM_EVENTS = Counter(
    "alignwork_stream_events_total", "Stats events sent on streams after their first.",
)
STREAM_LAG = Histogram(
    "alignwork_stream_lag_seconds",
    "From a change's statement in the database to its event on a stream, for changes this process "
    "brought to the cache (those another process brought are counted as events, not timed).",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)


def record_stream_event(lag_seconds: float | None) -> None:
    STREAM_EVENTS.inc()
    if lag_seconds is not None:
        STREAM_LAG.observe(max(lag_seconds, 0.0))


def listener_lease_seen(pid: int | None, age: float | None) -> None:
    LISTENER_LEADER_PID.set(pid or 0)
    LISTENER_LEASE_AGE.set(age if age is not None else float("nan"))


def record_change_applied(lag_seconds: float, now: float) -> None:
    LISTENER_LAG.observe(max(lag_seconds, 0.0))
    LISTENER_LAST_APPLIED.set(now)


def _count_statement(conn, cursor, statement, parameters, context, executemany) -> None:
    DB_STATEMENTS.inc()


def count_statements(engine) -> None:
    """Count every statement ``engine`` sends (once per engine)."""
    if not event.contains(engine, "before_cursor_execute", _count_statement):
        event.listen(engine, "before_cursor_execute", _count_statement)


def record_lookup(outcome: str, seconds: float) -> None:
    STATS_LOOKUPS.labels(outcome=outcome).observe(seconds)


@contextmanager
def timed_computation() -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        STATS_COMPUTATIONS.observe(time.perf_counter() - started)


def registry() -> CollectorRegistry:
    """The registry to read: every worker's files under gunicorn, this process otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return merged
    return REGISTRY


def _samples() -> dict[tuple[str, tuple], float]:
    values: dict[tuple[str, tuple], float] = {}
    for family in registry().collect():
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = values.get(key, 0.0) + sample.value
    return values


def summed_cache_entries() -> int:
    return int(_samples().get(("alignwork_cache_entries", ()), 0))


def cache_summary(cache_size: int | None) -> dict:
    """The ``cache-metrics`` numbers: totals since the server started, over all workers."""
    samples = _samples()

    def lookups(outcome: str, part: str) -> float:
        return samples.get((f"alignwork_stats_lookup_seconds_{part}", (("outcome", outcome),)), 0.0)

    hits, misses, bypasses, stale = (int(lookups(o, "count")) for o in ("HIT", "MISS", "BYPASS", "STALE"))
    total = hits + misses + bypasses + stale

    def average_ms(outcome: str) -> float | None:
        count = lookups(outcome, "count")
        return round(lookups(outcome, "sum") / count * 1000, 3) if count else None

    return {
        "hits": hits,
        "misses": misses,
        "bypasses": bypasses,
        "stale": stale,
        "total_requests": total,
        "hit_rate": round(hits / total, 4) if total else None,
        "computations": int(samples.get(("alignwork_stats_computation_seconds_count", ()), 0)),
        "precomputed": int(samples.get(("alignwork_stats_precomputed_total", ()), 0)),
        "precomputed_hits": int(samples.get(("alignwork_stats_precomputed_hits_total", ()), 0)),
        "db_statements": int(samples.get(("alignwork_db_statements_total", ()), 0)),
        "avg_hit_time_ms": average_ms("HIT"),
        "avg_miss_time_ms": average_ms("MISS"),
        "cache_size": cache_size,
        **{f"listener_{name}": value for name, value in listener_summary(samples).items()},
        **stream_summary(samples),
    }


def stream_summary(samples: dict) -> dict:
    """The live dashboards: streams open, events sent, their mean lag, streams refused."""
    timed = samples.get(("alignwork_stream_lag_seconds_count", ()), 0)
    lag_sum = samples.get(("alignwork_stream_lag_seconds_sum", ()), 0.0)
    return {
        "streams_open": int(samples.get(("alignwork_streams_open", ()), 0)),
        "stream_events": int(samples.get(("alignwork_stream_events_total", ()), 0)),
        "stream_avg_lag_ms": round(lag_sum / timed * 1000, 1) if timed else None,
        "streams_refused": int(sum(value for (name, _), value in samples.items()
                             if name == "alignwork_streams_refused_total")),
    }


def _finite(value: float | None) -> float | None:
    return round(value, 3) if value is not None and value == value else None


def listener_summary(samples: dict | None = None) -> dict:
    """The change listeners' state: how many run, are connected and lead; when one last wrote
    a change; how many it wrote and their mean lag."""
    samples = _samples() if samples is None else samples
    applied = int(samples.get(("alignwork_listener_lag_seconds_count", ()), 0))
    lag_sum = samples.get(("alignwork_listener_lag_seconds_sum", ()), 0.0)
    last = samples.get(("alignwork_listener_last_applied_timestamp_seconds", ()), 0.0)
    return {
        "running": int(samples.get(("alignwork_listener_running", ()), 0)),
        "connected": int(samples.get(("alignwork_listener_connected", ()), 0)),
        "leading": int(samples.get(("alignwork_listener_leading", ()), 0)),
        "leader_pid": int(samples.get(("alignwork_listener_leader_pid", ()), 0)) or None,
        "lease_age_seconds": _finite(samples.get(("alignwork_listener_lease_age_seconds", ()))),
        "takeovers": int(samples.get(("alignwork_listener_takeovers_total", ()), 0)),
        "fenced_writes": int(samples.get(("alignwork_listener_fenced_writes_total", ()), 0)),
        "changes_applied": applied,
        "avg_lag_ms": round(lag_sum / applied * 1000, 1) if applied else None,
        "last_applied_seconds_ago": round(time.time() - last, 1) if last else None,
    }
