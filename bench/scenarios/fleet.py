"""7. Fleet: open dashboards polling every 30 s, as an operator runs them, with and without writes.

Micro-benchmarks hammering one key say how fast a HIT is; this says what the real polling
pattern costs the database. 100 tenants with 170 open dashboards (60 tenants with one, 30 with
two, 10 with five) poll mega-stats every 30 s with jitter, conditionally (``If-None-Match``
with the last ETag), against gunicorn with 3 sync workers on PostgreSQL and Redis. After a
warm-up round, a read-only phase, then a phase with about one write per tenant every 5 minutes
(bookings and cancellations for today, through the API), followed by one more interval of
polling so every write's recomputation is seen.

Database statements come from the server's own counter (``db_statements`` in cache-metrics),
so nothing is inferred: per poll is its delta over the lookups' delta. The writes' own
statements are measured beforehand on a tenant nobody polls and subtracted. Stale answers are
judged by ``bench/freshness.py`` against what each write is known to change.

Last, on the same server, the per-poll cost at 10 and at 1 000 tenants (``tenant_scale.py``).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from .. import client
from ..dashboards import Dashboard, Fleet, Poll
from ..freshness import Write, judge
from ..report import median, percentile
from ..stack import ServerSettings
from . import MEGA_STATS, Context, midday_zone, tenant_scale

SCENARIO = "7 fleet"
APPOINTMENTS = "/api/v1/appointments"
MIX = ((0.6, 1), (0.3, 2), (0.1, 5))  # share of tenants, dashboards each
CALIBRATION_WRITES = 5  # of each kind, on a tenant nobody polls
SEED = 9


@dataclass
class Tenant:
    id: str
    token: str
    patient: int = 0
    confirmed_today: list[int] = field(default_factory=list)  # ids a cancellation can take
    baseline: dict | None = None


def run(ctx: Context) -> None:
    plan = ctx.plan
    rng = random.Random(SEED)
    zone = midday_zone()
    path = f"{MEGA_STATS}?tz={zone.key}"
    tenants = _tenants(ctx, zone, plan.fleet_tenants, max(plan.ratio_tenants))
    polled, calibration = tenants[: plan.fleet_tenants], tenants[-1]
    settings = _settings(ctx)
    with ctx.stack.server(ctx.main, settings) as server:
        per_write = _calibrate(ctx, server, calibration, zone, rng)
        fleet = _fleet(ctx, server, path, polled, zone, rng)
        dashboards = [Dashboard(t.id, t.token) for t in tenants[:-1]]
        ratio = tenant_scale.measure(ctx, server, path, dashboards, SEED)
    _report(ctx, settings, per_write, fleet, ratio, polled)


def _settings(ctx: Context) -> ServerSettings:
    """Redis with the plan's 3 sync workers; on SimpleCache (when Redis is left out) the one
    deployment production accepts, one worker with threads."""
    if "redis" in ctx.plan.caches:
        return ServerSettings("redis", "sync", ctx.plan.fleet_workers)
    ctx.report.notes.append("Fleet on SimpleCache (Redis left out): one gthread worker, not 3 sync workers.")
    return ServerSettings("simple", "gthread", 1, ctx.plan.threads)


def _tenants(ctx: Context, zone: ZoneInfo, polled: int, total: int) -> list[Tenant]:
    """``total`` tenants in ``zone`` plus one for calibration, made through the services in this
    process. The polled ones get a patient and a few appointments today (confirmed ones to
    cancel later) and their expected numbers, computed by the app's own ``compute_stats``."""
    from alignwork.auth import issue_token
    from alignwork.periods import local_date
    from alignwork.services.appointments import create_appointment
    from alignwork.services.patients import create_patient
    from alignwork.services.stats.query import compute_stats
    from alignwork.services.tenants import create_tenant

    width = len(str(total))
    ids = [f"fleet-{n:0{width}d}" for n in range(1, total + 1)] + ["fleet-calibration"]
    ctx.stack.log.comment(
        f"flask --app alignwork tenants create {ids[0]} … {ids[-2]} --timezone {zone.key}, and for the "
        f"first {polled} and fleet-calibration a patient and five appointments today: done in one "
        "process through the same services, with a token for each from issue_token"
    )
    today = local_date(zone, datetime.now(timezone.utc))
    with ctx.stack.app(ctx.main).app_context():
        tenants = []
        for number, tenant_id in enumerate(ids):
            create_tenant(tenant_id, timezone=zone.key)
            tenant = Tenant(tenant_id, issue_token(tenant_id, 24 * 3600))
            if number < polled or tenant_id == "fleet-calibration":
                tenant.patient = create_patient(tenant_id, "Fleet patient").id
                for hour, status in ((9, "confirmed"), (10, "confirmed"), (11, "confirmed"),
                                     (14, "pending"), (15, "pending")):
                    booked = create_appointment(tenant_id, tenant.patient, _at(zone, today, hour), 30, status)
                    if status == "confirmed":
                        tenant.confirmed_today.append(booked.id)
                tenant.baseline = compute_stats(tenant_id, zone, today)
            tenants.append(tenant)
    return tenants


def _at(zone: ZoneInfo, day, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def _write(server_url: str, tenant: Tenant, zone: ZoneInfo, kind: str, rng: random.Random) -> Write:
    """One write for today through the API: ``kind`` is a status to book, or "cancel" (one of
    the tenant's confirmed appointments; a booking when none is left)."""
    if kind == "cancel" and not tenant.confirmed_today:
        kind = "confirmed"
    sent = time.monotonic()
    if kind == "cancel":
        appointment = tenant.confirmed_today.pop(rng.randrange(len(tenant.confirmed_today)))
        answer = client.send(f"{server_url}{APPOINTMENTS}/{appointment}", tenant.token, "PATCH",
                             payload={"status": "cancelled"})
        ok, change = answer.status == 200, {"confirmed": -1}
    else:
        today = datetime.now(timezone.utc).astimezone(zone).date()
        starts = _at(zone, today, rng.randrange(8, 18), rng.choice((0, 15, 30, 45)))
        answer = client.send(server_url + APPOINTMENTS, tenant.token, "POST", payload={
            "patientId": tenant.patient, "startsAt": starts.isoformat(), "durationMin": 30, "status": kind})
        ok, change = answer.status == 201, {kind: +1}
        if ok and kind == "confirmed":
            tenant.confirmed_today.append(json.loads(answer.body)["id"])
    return Write(tenant.id, sent, time.monotonic(), ok, change)


def _calibrate(ctx: Context, server, tenant: Tenant, zone: ZoneInfo, rng: random.Random) -> dict[str, float]:
    """Statements and computations of one write with nobody polling: a booking, a cancellation."""
    _write(server.url, tenant, zone, "confirmed", rng)  # the tenant's record is now cached
    costs = {}
    for kind in ("confirmed", "cancel"):
        before = ctx.metrics(server)
        writes = [_write(server.url, tenant, zone, kind, rng) for _ in range(CALIBRATION_WRITES)]
        delta = client.metrics_delta(before, ctx.metrics(server))
        if delta is None or not all(w.ok for w in writes):
            raise RuntimeError("calibration writes failed or cache-metrics did not answer")
        costs[kind] = delta["db_statements"] / CALIBRATION_WRITES
    return costs


@dataclass
class FleetRun:
    dashboards: int
    polls: list[Poll]
    writes: list[Write]
    windows: dict[str, tuple[float, float]]  # phase -> (start, end), monotonic
    deltas: dict[str, dict[str, int]]  # phase -> cache-metrics delta
    skipped: int


def _fleet(ctx: Context, server, path: str, tenants: list[Tenant], zone: ZoneInfo,
           rng: random.Random) -> FleetRun:
    plan = ctx.plan
    dashboards = _dashboards(tenants)
    fleet = Fleet(server.url, path, dashboards, plan.fleet_interval, plan.fleet_jitter, random.Random(SEED + 1))
    fleet.start()
    try:
        time.sleep(plan.fleet_interval + plan.fleet_jitter + 1)  # the warm-up round
        marks = [(time.monotonic(), ctx.metrics(server))]
        time.sleep(plan.fleet_read_seconds)
        marks.append((time.monotonic(), ctx.metrics(server)))
        writes = _writes(server.url, tenants, zone, rng, marks[-1][0], plan)
        time.sleep(max(0.0, marks[-1][0] + plan.fleet_write_seconds + plan.fleet_interval - time.monotonic()))
    finally:
        fleet.stop()
    marks.append((time.monotonic(), ctx.metrics(server)))
    phases = ("read", "write")
    deltas = {phase: client.metrics_delta(marks[i][1], marks[i + 1][1]) for i, phase in enumerate(phases)}
    if any(d is None for d in deltas.values()):
        raise RuntimeError("cache-metrics did not answer its counters")
    windows = {phase: (marks[i][0], marks[i + 1][0]) for i, phase in enumerate(phases)}
    return FleetRun(len(dashboards), fleet.snapshot(), writes, windows, deltas, fleet.skipped)


def _dashboards(tenants: list[Tenant]) -> list[Dashboard]:
    counts, start = [], 0
    for share, each in MIX:
        size = round(share * len(tenants)) if each != MIX[-1][1] else len(tenants) - start
        counts += [each] * size
        start += size
    return [Dashboard(t.id, t.token) for t, n in zip(tenants, counts) for _ in range(n)]


def _writes(server_url: str, tenants: list[Tenant], zone: ZoneInfo, rng: random.Random,
            start: float, plan) -> list[Write]:
    """About one write per tenant every ``fleet_write_every`` seconds, at random moments of the
    phase, one at a time (so no two writes of a tenant overlap)."""
    count = max(1, round(len(tenants) * plan.fleet_write_seconds / plan.fleet_write_every))
    moments = sorted(rng.uniform(0, plan.fleet_write_seconds) for _ in range(count))
    writes = []
    for moment in moments:
        time.sleep(max(0.0, start + moment - time.monotonic()))
        kind = rng.choices(("confirmed", "pending", "cancel"), (2, 1, 1))[0]
        writes.append(_write(server_url, rng.choice(tenants), zone, kind, rng))
    return writes


def _report(ctx: Context, settings: ServerSettings, per_write: dict[str, float], run: FleetRun,
            ratio: list[tenant_scale.Run], tenants: list[Tenant]) -> None:
    plan = ctx.plan
    label = f"{settings.label}, {len(tenants)} tenants, {run.dashboards} dashboards every {plan.fleet_interval:g} s"

    def add(measure: str, value: float, unit: str, target: tuple[str, float] | None = None) -> None:
        ctx.report.add(SCENARIO, label, measure, value, unit, target=target)

    add("statements per write, measured alone (booking)", per_write["confirmed"], "statements")
    add("statements per write, measured alone (cancellation)", per_write["cancel"], "statements")
    baselines = {t.id: t.baseline for t in tenants}
    for phase, (start, end) in run.windows.items():
        polls = [p for p in run.polls if start <= p.sent < end]
        delta = run.deltas[phase]
        lookups = delta["hits"] + delta["misses"] + delta["bypasses"] + delta["stale"]
        writes = run.writes if phase == "write" else []
        ok = sum(w.ok for w in writes)
        own = sum(per_write["cancel" if w.change.get("confirmed") == -1 else "confirmed"] for w in writes if w.ok)
        read_only = phase == "read"
        name = (f"read-only, {end - start:.0f} s" if read_only else
                f"{len(writes)} writes in {plan.fleet_write_seconds} s, then {plan.fleet_interval:g} s more")
        hits = sum(p.answered and p.x_cache == "HIT" for p in polls)
        add(f"{name}: polls", len(polls), "polls")
        add(f"{name}: hit rate (HIT and 304-from-HIT / polls)", round(hits / max(1, len(polls)), 4), "ratio",
            (">=", 0.99) if read_only else None)
        add(f"{name}: 304 answers", sum(p.status == 304 for p in polls), "polls")
        add(f"{name}: database statements, all", delta["db_statements"], "statements")
        if not read_only:
            add(f"{name}: of which the writes' own (measured alone)", round(own), "statements")
        add(f"{name}: database statements per poll" + ("" if read_only else " (writes' own left out)"),
            round((delta["db_statements"] - own) / max(1, lookups), 4), "statements",
            ("<=", 0.01) if read_only else None)
        add(f"{name}: computations", delta["computations"], "computations")
        if not read_only:
            add(f"{name}: computations per write", round(delta["computations"] / max(1, ok), 3), "computations",
                ("<=", 1.2))
            add(f"{name}: failed writes", len(writes) - ok, "writes", ("==", 0))
        verdicts = judge(polls, run.writes, baselines)
        add(f"{name}: stale answers (of {verdicts.judged} judged, {verdicts.unjudged} overlapping a write)",
            verdicts.stale, "polls", ("==", 0))
        add(f"{name}: failed polls", sum(not p.answered for p in polls), "polls", ("==", 0))
        add(f"{name}: poll latency p50", round(median([p.ms for p in polls]), 2), "ms")
        add(f"{name}: poll latency p99", round(percentile([p.ms for p in polls], 0.99), 2), "ms")
    if run.skipped:
        ctx.report.notes.append(f"Fleet: {run.skipped} polls skipped because the dashboard's previous poll was out.")
    tenant_scale.report(ctx, SCENARIO, settings, ratio)
