"""11. Live dashboards: the mega-stats stream on the shipped config (gevent workers).

One configuration per run: PostgreSQL and Redis with the plan's workers when both are measured,
as production runs; else SimpleCache with one worker, the only deployment a per-process cache
allows, on the run's database (SQLite with ``--database sqlite``); the table says which. Tenants
are made in this process through the services, each with a patient, in the zone nearest its
local noon (so no midnight wakes a stream), and every stream names that zone (``?tz=``). Streams
are held by the harness on raw sockets (``bench/event_streams.py``), ``streams_per_tenant`` per
tenant, within ``STREAMS_PER_TENANT`` (20, counted over every worker). Three servers, one after
another:

- **Latency** (this module): ``streams_latency_tenants`` tenants' streams open (1,000). One
  write at a time, each to another tenant, alternately through the API (a POST, answered 201)
  and as psql would (an INSERT on the harness's own database connection, which the app never
  sees: only the change listener can bring it to the cache). On every stream of that tenant,
  the latency is from the write's return (the 201 read, or COMMIT returned) to the stream's next
  event; an event that came before the 201 was read (the commit precedes it) counts 0.
- **Capacity** (``stream_capacity.py``): 5,000 streams; idle CPU, memory per stream, and HIT
  polls beside them.
- **Quiet** (this module): a few streams on a server whose ``STREAM_MAX_SECONDS`` is a few
  seconds, reconnecting as the dashboard does (after the ``retry:`` sent, with
  ``Last-Event-ID``), and nothing written. An unchanging dashboard's only request is then that
  reconnection, one per lifetime (keep-alives are comments on the open response), so in an hour
  it makes 3600 / (lifetime + delay) of them, with the lifetime the measured share of
  ``STREAM_MAX_SECONDS`` (it is cut by up to a tenth at random) times the default 3600, and the
  delay from a stream's end to its reconnection as measured. Polling every 30 s makes 120.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .. import client
from ..event_streams import Holder, Stream, open_files
from ..report import median, percentile
from ..stack import ServerSettings
from . import MEGA_STATS, Context, midday_zone
from .stream_capacity import Capacity
from .stream_capacity import measure as measure_capacity

SCENARIO = "11 streams"
STREAM = MEGA_STATS + "/stream"
APPOINTMENTS = "/api/v1/appointments"
LATENCY_TARGETS = {"p50": 500.0, "p99": 1000.0}  # ms
CPU_PERCENT = 5.0  # of one core, the whole server at rest with every stream open
KIB_PER_STREAM = 50.0
P99_RATIO = 1.2  # HIT p99 with the streams open over without
EVENT_TIMEOUT = 10.0  # a write's event not seen by then is missing
POLL_INTERVAL = 30  # seconds: a dashboard without a stream
DEFAULT_LIFETIME = 3600  # STREAM_MAX_SECONDS shipped
SEED = 11


@dataclass(frozen=True)
class Tenant:
    id: str
    token: str
    patient: int


def run(ctx: Context) -> None:
    plan = ctx.plan
    settings = _settings(ctx)
    zone = midday_zone()
    tenants = _tenants(ctx, zone, max(plan.streams_tenants, plan.streams_latency_tenants, plan.streams_quiet))
    label = f"{settings.label}, {ctx.main.label}"
    largest = plan.streams_tenants * plan.streams_per_tenant
    with open_files(largest + 1024) as limit:
        ctx.report.notes.append(
            f"Streams (11): {label}. The harness raised its open-files soft limit to its hard limit, "
            f"{limit:,}, which gunicorn and its workers inherit (a worker's STREAMS_PER_PROCESS is cut "
            f"to that less 256){'' if limit >= largest + 256 else ', too few for one worker to hold all'}. "
            f"{plan.streams_per_tenant} streams per tenant, below STREAMS_PER_TENANT (20, not raised). "
            f"Tenants in {zone.key}, near its noon.")
        _latency(ctx, settings, label, tenants[:plan.streams_latency_tenants], zone)
        held = tenants[:plan.streams_tenants]
        capacity = measure_capacity(
            ctx, settings, lambda: streams_of(held, plan.streams_per_tenant, _path(zone)),
            [t.token for t in held], f"?tz={zone.key}")
        _report_capacity(ctx, f"{label}, {capacity.streams:,} streams over {len(held):,} tenants", capacity)
        _quiet(ctx, settings, label, tenants, zone)


def _settings(ctx: Context) -> ServerSettings:
    cache = "redis" if ctx.main.kind == "postgresql" and "redis" in ctx.plan.caches else "simple"
    return ServerSettings.deployable(cache, "gevent", ctx.plan.workers, 1)


def _path(zone: ZoneInfo) -> str:
    return f"{STREAM}?tz={zone.key}"


def streams_of(tenants: list[Tenant], per_tenant: int, path: str, follow: bool = False) -> list[Stream]:
    return [Stream(path, t.token, t.id, follow) for t in tenants for _ in range(per_tenant)]


def _tenants(ctx: Context, zone: ZoneInfo, count: int) -> list[Tenant]:
    """``count`` tenants in ``zone``, each with a patient and a day-long token, made in one
    process through the services (before any server starts, so each finds them at once)."""
    from alignwork.auth import issue_token
    from alignwork.services.patients import create_patient
    from alignwork.services.tenants import create_tenant

    width = len(str(count))
    ids = [f"stream-{n:0{width}d}" for n in range(1, count + 1)]
    ctx.stack.log.comment(
        f"flask --app alignwork tenants create {ids[0]} … {ids[-1]} --timezone {zone.key}, each with a "
        "patient: done in one process through the same services, with a token for each from issue_token")
    tenants = []
    with ctx.stack.app(ctx.main).app_context():
        for tenant_id in ids:
            create_tenant(tenant_id, timezone=zone.key)
            patient = create_patient(tenant_id, "Stream patient").id
            tenants.append(Tenant(tenant_id, issue_token(tenant_id, 24 * 3600), patient))
    return tenants


def _latency(ctx: Context, settings: ServerSettings, label: str, tenants: list[Tenant],
             zone: ZoneInfo) -> None:
    plan = ctx.plan
    rng = random.Random(SEED)
    streams = streams_of(tenants, plan.streams_per_tenant, _path(zone))
    by_tenant: dict[str, list[Stream]] = {}
    for stream in streams:
        by_tenant.setdefault(stream.tenant, []).append(stream)
    latencies: dict[str, list[float]] = {"API": [], "psql": []}  # negative: before the write returned
    missing = 0
    engine = sa.create_engine(ctx.main.url)
    with ctx.stack.server(ctx.main, settings) as server, engine.connect() as conn:
        holder = Holder.to(server.url)
        try:
            holder.open(streams)
            not_open = sum(not s.open for s in streams)
            for number in range(2 * plan.streams_writes):
                kind = ("API", "psql")[number % 2]
                tenant = tenants[number % len(tenants)]
                mine = by_tenant[tenant.id]
                seen = [len(s.events) for s in mine]
                returned = _write(server.url, conn, tenant, kind)
                arrivals = _next_events(mine, seen, EVENT_TIMEOUT)
                missing += sum(a is None for a in arrivals)
                latencies[kind] += [a - returned for a in arrivals if a is not None]
                time.sleep(rng.uniform(0.05, 0.25))
        finally:
            holder.close(streams)
            holder.stop()
    engine.dispose()
    add = ctx.report.add
    configuration = (f"{label}, {len(streams):,} streams over {len(tenants):,} tenants, "
                     f"{plan.streams_writes} writes of each kind")
    add(SCENARIO, configuration, "streams not opened", not_open, "streams", target=("==", 0))
    for kind, measured in latencies.items():
        values = [1000 * max(0.0, value) for value in measured]
        measure = f"{kind} writes: commit to event on every stream"
        add(SCENARIO, configuration, f"{measure}, p50", round(median(values), 1), "ms",
            target=("<=", LATENCY_TARGETS["p50"]))
        add(SCENARIO, configuration, f"{measure}, p99", round(percentile(values, 0.99), 1), "ms",
            target=("<=", LATENCY_TARGETS["p99"]))
    early = sum(value < 0 for value in latencies["API"])
    add(SCENARIO, configuration, f"API writes: events before the 201 was read (of {len(latencies['API'])})",
        early, "events")
    add(SCENARIO, configuration, f"events missing ({EVENT_TIMEOUT:.0f} s after a write)", missing, "events",
        target=("==", 0))


def _write(server_url: str, conn: sa.Connection, tenant: Tenant, kind: str) -> float:
    """Book an appointment five minutes from now; when the write returned (monotonic)."""
    now = datetime.now(timezone.utc)
    starts = now + timedelta(minutes=5)
    if kind == "API":
        answer = client.send(server_url + APPOINTMENTS, tenant.token, method="POST", payload={
            "patientId": tenant.patient, "startsAt": starts.isoformat(), "durationMin": 30,
            "status": "confirmed"})
        if answer.status != 201:
            raise RuntimeError(f"a booking was answered {answer.status}")
        return time.monotonic()
    conn.execute(sa.text(
        "INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, status, created_at, "
        "updated_at, version) VALUES (:t, :p, :s, 30, 'confirmed', :now, :now, 1)"),
        {"t": tenant.id, "p": tenant.patient, "s": starts, "now": now})
    conn.commit()
    return time.monotonic()


def _next_events(streams: list[Stream], seen: list[int], timeout: float) -> list[float | None]:
    """When each stream's next event (after its first ``seen``) arrived; None if none came."""
    arrivals: list[float | None] = [None] * len(streams)
    deadline = time.monotonic() + timeout
    while True:
        for index, stream in enumerate(streams):
            if arrivals[index] is None and len(stream.events) > seen[index]:
                arrivals[index] = stream.events[seen[index]][0]
        if all(a is not None for a in arrivals) or time.monotonic() > deadline:
            return arrivals
        time.sleep(0.005)


def _report_capacity(ctx: Context, configuration: str, found: Capacity) -> None:
    add = ctx.report.add
    seconds = ctx.plan.streams_idle_seconds
    add(SCENARIO, configuration, "streams not opened (worst round)", found.not_open, "streams",
        target=("==", 0))
    add(SCENARIO, configuration, f"idle CPU, master and workers, no stream open ({seconds / 2:g} s)",
        round(found.cpu_none, 2), "% of a core")
    add(SCENARIO, configuration, f"idle CPU, master and workers, every stream open ({seconds:g} s)",
        round(found.cpu_percent, 2), "% of a core", target=("<=", CPU_PERCENT))
    add(SCENARIO, configuration, "keep-alives received in that window", found.keepalives, "comments")
    add(SCENARIO, configuration, "workers' Pss, no stream open", round(found.pss_none / 1024, 1), "MiB")
    add(SCENARIO, configuration, "workers' Pss, every stream open", round(found.pss_with / 1024, 1), "MiB")
    add(SCENARIO, configuration, "memory per stream (Pss with minus without)",
        round((found.pss_with - found.pss_none) / found.streams, 1), "KiB", target=("<=", KIB_PER_STREAM))
    p99 = {kind: median([r.p99 for r in results]) for kind, results in found.runs.items()}
    for kind, results in found.runs.items():
        add(SCENARIO, configuration, f"HIT throughput {kind} the streams (median)",
            median([r.rate for r in results]), "req/s")
        add(SCENARIO, configuration, f"HIT p99 {kind} the streams (median)", p99[kind], "ms")
        add(SCENARIO, configuration, f"server CPU per HIT {kind} the streams (median)",
            round(median(found.cpu_per_hit[kind]), 1), "µs")
    ratio = round(p99["with"] / p99["without"], 3) if p99["without"] else 0.0
    add(SCENARIO, configuration, "HIT p99 with / without the streams", ratio, "ratio",
        target=("<=", P99_RATIO))
    add(SCENARIO, configuration, "failed requests (wrk, all runs)",
        sum(r.failed for results in found.runs.values() for r in results), "requests", target=("==", 0))
    ctx.report.notes.append(
        f"Streams (11), capacity: the machine's 1-minute load average was {found.load[0]:.2f} before and "
        f"{found.load[1]:.2f} after ({os.cpu_count()} cores); other work on it moves the HIT p99s (and, "
        "less, the server's CPU per HIT).")


def _quiet(ctx: Context, settings: ServerSettings, label: str, tenants: list[Tenant],
           zone: ZoneInfo) -> None:
    plan = ctx.plan
    lifetime = plan.streams_quiet_lifetime
    streams = streams_of(tenants[:plan.streams_quiet], 1, _path(zone), follow=True)
    short_lived = {"ALIGNWORK_STREAM_MAX_SECONDS": str(lifetime)}
    with ctx.stack.server(ctx.main, settings, env=short_lived) as server:
        holder = Holder.to(server.url)
        try:
            began = time.monotonic()
            holder.open(streams)
            time.sleep(max(0.0, plan.streams_quiet_seconds - (time.monotonic() - began)))
            closed = time.monotonic()
        finally:
            holder.close(streams)
            holder.stop()
    # A visit the server ended (its lifetime); those still open when the harness closed them are not.
    lifetimes = [v.ended - v.sent for s in streams for v in s.visits
                 if v.status == 200 and not v.error and v.ended is not None and v.ended < closed]
    gaps = [after.sent - before.ended for s in streams for before, after in zip(s.visits, s.visits[1:])
            if before.ended is not None]
    reconnects = sum(len(s.visits) - 1 for s in streams)
    refused = sum(v.status != 200 or bool(v.error) for s in streams for v in s.visits)
    resent = sum(v.events for s in streams for v in s.visits[1:])
    share = median(lifetimes) / lifetime if lifetimes else 0.0
    delay = median(gaps) if gaps else median([s.retry_ms / 1000 for s in streams])
    per_hour = 3600 / (share * DEFAULT_LIFETIME + delay) if share else 0.0
    add = ctx.report.add
    configuration = (f"{label}, {len(streams)} streams, STREAM_MAX_SECONDS={lifetime} for "
                     f"{plan.streams_quiet_seconds:.0f} s")
    add(SCENARIO, configuration, "reconnects", reconnects, "requests")
    add(SCENARIO, configuration, "requests refused or failed", refused, "requests", target=("==", 0))
    add(SCENARIO, configuration, "stream lifetime / STREAM_MAX_SECONDS (median)", round(share, 3), "ratio")
    add(SCENARIO, configuration, "from the stream's end to its reconnection (median)", round(delay, 2), "s")
    add(SCENARIO, configuration, "stats events sent again on reconnection (Last-Event-ID current)", resent,
        "events")
    add(SCENARIO, configuration,
        f"unchanging dashboard: requests per hour at STREAM_MAX_SECONDS={DEFAULT_LIFETIME}",
        round(per_hour, 2), "requests")
    add(SCENARIO, configuration, f"the same, polling every {POLL_INTERVAL} s", 3600 // POLL_INTERVAL,
        "requests")
