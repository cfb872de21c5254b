"""3. Stampede: many requests released together on a key nobody has computed.

A key is made cold by asking for a time zone this run has not used yet (the zone is part of the
key; every round of every server gets its own, since servers share the Redis), on a tenant
already known to the workers, as when a dashboard in a new zone opens or a
write has just retired the tenant's entries. All requests are on open connections before they
are released, so they reach every worker at once.

Computations are counted from the cache metrics when the server has them (the authority: they
count ``compute_stats`` calls in every worker), and always from the answers: each MISS or
BYPASS answer is at most one computation (a BYPASS may have waited for another request in its
worker that computed), a HIT is none.
"""

from __future__ import annotations

from .. import client
from ..report import median
from ..stack import ServerSettings
from . import MEGA_STATS, Context, zones

SCENARIO = "3 stampede"


def run(ctx: Context) -> None:
    plan = ctx.plan
    token = ctx.clinic_token()
    cold = iter(reversed(zones()))
    for cache in _caches(plan.caches):
        for worker_class in plan.worker_classes:
            settings = ServerSettings.deployable(cache, worker_class, plan.workers, plan.threads)
            with ctx.stack.server(ctx.main, settings) as server:
                # The tenant is known and its default key warm, as on a server in use.
                for _ in range(settings.workers):
                    client.get(server.url + MEGA_STATS, token)
                rounds = []
                for zone in (next(cold) for _ in range(plan.stampede_rounds)):
                    before = ctx.metrics(server)
                    answers = client.burst(f"{server.url}{MEGA_STATS}?tz={zone}", token, plan.stampede_requests)
                    delta = client.metrics_delta(before, ctx.metrics(server))
                    rounds.append((answers, delta))
            _report(ctx, settings, rounds)


def _caches(caches: tuple[str, ...]) -> tuple[str, ...]:
    """The stampede is about the shared lock, so the Redis caches (one server, the cluster);
    SimpleCache only when it is the one cache measured (its lock is per process: one
    computation per worker at most)."""
    return tuple(c for c in caches if c != "simple") or caches


def _report(ctx: Context, settings: ServerSettings, rounds) -> None:
    add = ctx.report.add
    label = f"{settings.label}, {ctx.plan.stampede_requests} requests × {len(rounds)} rounds"
    shared = settings.cache != "simple"
    from_answers = [sum(a.x_cache in ("MISS", "BYPASS") for a in answers) for answers, _ in rounds]
    add(SCENARIO, label, "computations, worst round (X-Cache MISS/BYPASS answers)", max(from_answers),
        "computations", target=("==", 1) if shared else None)
    # A BYPASS is a worker that could not reach the cache (a timeout, its back-off) and answered
    # from the database, as designed; a MISS past the first is a lock that did not hold. Only the
    # split says which the worst round was.
    worst = rounds[from_answers.index(max(from_answers))][0]
    add(SCENARIO, label, "of which BYPASS, worst round (X-Cache)",
        sum(a.x_cache == "BYPASS" for a in worst), "answers")
    deltas = [delta for _, delta in rounds]
    if all(d is not None for d in deltas):
        add(SCENARIO, label, "computations, worst round (cache-metrics)", max(d["computations"] for d in deltas),
            "computations", target=("==", 1) if shared else None)
    answers = [a for answers, _ in rounds for a in answers]
    add(SCENARIO, label, "failed requests", sum(a.status != 200 for a in answers), "requests",
        target=("==", 0))
    seconds = [a.seconds * 1000 for a in answers if a.status == 200]
    add(SCENARIO, label, "latency p50", median(seconds), "ms")
    add(SCENARIO, label, "latency max", max(seconds, default=0.0), "ms")
