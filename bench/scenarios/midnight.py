"""9. Midnight: open dashboards of many tenants in one zone, polled across its local midnight.

Keys carry the local date, so without pre-computation every dashboard in the zone misses at
midnight at once. Two apps run side by side in this process, each with its own tenants (all in
``America/Sao_Paulo``) and its own open dashboards: one pre-computes tomorrow's entries in the
window before midnight (``services/stats/midnight.py``), the other has that switched off
(``STATS_PRECOMPUTE_SECONDS=0``), the wave it replaces. Both are served by werkzeug's threaded
server in this process, whose clock time-machine moves to shortly before a local midnight and
lets run (``tick=True``): midnight is simulated, the polling and its latencies are real. The
window is shortened to 150 s (the default is 600) so a run takes minutes.

Reported per app: MISS per 5 s around midnight, the share of each dashboard's first poll after
midnight that was a MISS, p50/p99 latency in the 30 s after midnight against the polls before the
window opens (steady state, no pre-computation among them), and how the pre-computations spread
over the window (the largest share of them in one tenth of the keys' moments' span). The two
apps share this process and the database: each one's load is part of the other's latency.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import time_machine
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.ports import free_port

from ..dashboards import Dashboard, Fleet, sweep
from ..report import median, percentile
from . import MEGA_STATS, Context

SCENARIO = "9 midnight"
ZONE = "America/Sao_Paulo"
WINDOW = 150
# Seconds of polling before the window opens: a first round of every dashboard (unconditional),
# then the "before" sample, conditional polls in a steady state with no pre-computation among them.
LEAD, SAMPLE = 75, 40
AFTER = 30.0  # seconds of polls after midnight compared with it
SEED = 9


def _midnight() -> datetime:
    zone = ZoneInfo(ZONE)
    tomorrow = datetime.now(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, datetime.min.time(), zone).astimezone(timezone.utc)


class _Quiet(WSGIRequestHandler):
    """No access log line per poll: thousands of them, and time spent writing them."""

    def log_request(self, *args, **kwargs) -> None:
        pass


class _App:
    """One app, its tenants and their dashboards, served on a free port."""

    def __init__(self, ctx: Context, label: str, tenants: int, precompute: int):
        from alignwork import create_app

        settings = {"SQLALCHEMY_DATABASE_URI": ctx.main.url, "SECRET_KEY": ctx.stack.secret_key,
                    "STATS_PRECOMPUTE_SECONDS": precompute}
        settings.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=ctx.plan.redis_url,
                        CACHE_KEY_PREFIX=f"{ctx.stack.key_prefix}{label}:")
        self.label = label
        self.app = create_app(settings)
        self.dashboards = self._tenants(tenants)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._server = make_server("127.0.0.1", port, self.app, threaded=True, request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _tenants(self, count: int) -> list[Dashboard]:
        from alignwork.auth import issue_token
        from alignwork.extensions import db
        from alignwork.models import Appointment
        from alignwork.services import patients, tenants

        rng = random.Random(f"{SEED}{self.label}")
        now = datetime.now(timezone.utc)
        dashboards = []
        with self.app.app_context():
            for n in range(count):
                tenant = f"night-{self.label}-{n}"
                tenants.create_tenant(tenant, timezone=ZONE)
                patient = patients.create_patient(tenant, "Night patient").id
                db.session.add_all(Appointment(
                    tenant_id=tenant, patient_id=patient, duration_min=30, status=rng.choice(["confirmed", "pending"]),
                    starts_at=now + timedelta(hours=rng.uniform(-48, 24 * 40))) for _ in range(8))
                db.session.commit()
                dashboards.append(Dashboard(tenant, issue_token(tenant, 48 * 3600)))
        return dashboards

    def __enter__(self) -> _App:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join(10)


def _analyse(polls, started_mono: float, started_sim: datetime, midnight: datetime) -> dict:
    def at(mono: float) -> float:  # seconds from midnight, on the simulated clock
        return (started_sim + timedelta(seconds=mono - started_mono) - midnight).total_seconds()

    answered = [(at(p.sent), p) for p in polls if p.answered]
    before = [p.ms for t, p in answered if -WINDOW - SAMPLE <= t < -WINDOW]
    after = [p.ms for t, p in answered if 0 <= t < AFTER]
    first_after: dict[str, str] = {}
    for t, p in sorted(answered, key=lambda item: item[0]):
        if t >= 0 and p.tenant not in first_after:
            first_after[p.tenant] = p.x_cache
    buckets: dict[int, list[int]] = {}
    for t, p in answered:
        if -30 <= t < 45:
            bucket = buckets.setdefault(int(t // 5) * 5, [0, 0])
            bucket[0] += p.x_cache == "MISS"
            bucket[1] += 1
    return {
        "before": before, "after": after,
        "first_miss_share": sum(v == "MISS" for v in first_after.values()) / max(len(first_after), 1),
        "buckets": dict(sorted(buckets.items())),
    }


def _spread(samples: list[tuple[float, float]]) -> float:
    """The largest share of pre-computations made in one tenth of the span they can fall in:
    the keys' moments lie in ``[-WINDOW, -MARGIN_SECONDS)``, and a key's poll comes up to one
    interval (30 s) after its moment. Spread evenly, a tenth holds about 10 %."""
    from alignwork.services.stats.midnight import MARGIN_SECONDS

    span = WINDOW - MARGIN_SECONDS + 30
    tenths = [0.0] * 10
    previous = None
    for seconds, value in samples:
        if previous is not None and value > previous[1]:
            tenth = int((seconds + WINDOW) / span * 10)
            tenths[min(max(tenth, 0), 9)] += value - previous[1]
        previous = (seconds, value)
    total = sum(tenths)
    return max(tenths) / total if total else 0.0


def run(ctx: Context) -> None:
    if ctx.plan.quick:
        ctx.report.notes.append("Scenario 9 (midnight) polls for about four minutes; skipped with --quick.")
        return
    if "redis" not in ctx.plan.caches:
        ctx.report.notes.append("Scenario 9 (midnight) needs Redis (a per-process cache pre-computes nothing); "
                                "skipped.")
        return
    from alignwork import metrics

    tenants = ctx.plan.midnight_tenants
    on, off = _App(ctx, "on", tenants, WINDOW), _App(ctx, "off", tenants, 0)  # set up on the real clock
    midnight = _midnight()
    started_sim = midnight - timedelta(seconds=WINDOW + LEAD)
    with time_machine.travel(started_sim, tick=True), on, off:
        started_mono = time.monotonic()
        fleets = {app.label: Fleet(app.url, MEGA_STATS, app.dashboards, 30.0, 3.0, random.Random(SEED))
                  for app in (on, off)}
        for app in (on, off):
            sweep(app.url, MEGA_STATS, app.dashboards)
        for fleet in fleets.values():
            fleet.start()
        samples = []
        end = midnight + timedelta(seconds=AFTER + 15)
        while datetime.now(timezone.utc) < end:
            samples.append(((datetime.now(timezone.utc) - midnight).total_seconds(),
                            metrics.STATS_PRECOMPUTED._value.get()))
            time.sleep(1.0)
        for fleet in fleets.values():
            fleet.stop()
    label = f"{tenants} tenants in {ZONE}, a dashboard each every 30 s, window {WINDOW} s"
    results = {name: _analyse(fleet.snapshot(), started_mono, started_sim, midnight)
               for name, fleet in fleets.items()}
    on_r, off_r = results["on"], results["off"]
    ctx.report.add(SCENARIO, label, "first polls after midnight that MISS (pre-computed)",
                   on_r["first_miss_share"] * 100, "%", target=("<=", 5.0))
    ctx.report.add(SCENARIO, label, "first polls after midnight that MISS (switched off)",
                   off_r["first_miss_share"] * 100, "%")
    for name, result in results.items():
        ctx.report.add(SCENARIO, label, f"p50 after / p50 before midnight ({name})",
                       median(result["after"]) / median(result["before"]), "×")
    ratio = percentile(on_r["after"], 0.99) / percentile(on_r["before"], 0.99)
    ctx.report.add(SCENARIO, label, "p99 after / p99 before midnight (pre-computed)", ratio, "×",
                   target=("<=", 1.5))
    ctx.report.add(SCENARIO, label, "p99 after / p99 before midnight (switched off)",
                   percentile(off_r["after"], 0.99) / percentile(off_r["before"], 0.99), "×")
    ctx.report.add(SCENARIO, label, "largest share of pre-computations in one tenth of their span",
                   _spread(samples) * 100, "%", target=("<=", 20.0))
    lines = ["| seconds from midnight | MISS / polls (pre-computed) | MISS / polls (switched off) |",
             "| --- | --- | --- |"]
    for start in sorted(set(on_r["buckets"]) | set(off_r["buckets"])):
        on_b, off_b = on_r["buckets"].get(start, [0, 0]), off_r["buckets"].get(start, [0, 0])
        lines.append(f"| {start:+d} to {start + 5:+d} | {on_b[0]} / {on_b[1]} | {off_b[0]} / {off_b[1]} |")
    lines.append("")
    lines.append(f"p50/p99 before: {median(on_r['before']):.1f}/{percentile(on_r['before'], 0.99):.1f} ms, after: "
                 f"{median(on_r['after']):.1f}/{percentile(on_r['after'], 0.99):.1f} ms (pre-computed); before: "
                 f"{median(off_r['before']):.1f}/{percentile(off_r['before'], 0.99):.1f} ms, after: "
                 f"{median(off_r['after']):.1f}/{percentile(off_r['after'], 0.99):.1f} ms (switched off).")
    ctx.report.section("Scenario 9: MISS per 5 s across midnight", "\n".join(lines))
