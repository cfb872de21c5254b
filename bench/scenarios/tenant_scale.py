"""Part of 7 (fleet): the per-poll cost at few and at many tenants.

A HIT must cost the same whatever the number of tenants: no SQL, one cache read. The same poll
rate is spread over 10 and over 1 000 warm tenants, alternated so drift on the machine falls on
both alike, and statements per poll (the server's own counter) and median latency are put side
by side. Polls are unconditional, so every answer is a full HIT with its body.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from .. import client
from ..dashboards import Dashboard, Fleet, Poll, sweep
from ..report import median
from ..stack import Server, ServerSettings
from . import Context

#: "About 1": the many-tenant median latency over the few-tenant one.
LATENCY_RATIO = 1.25


@dataclass
class Run:
    tenants: int
    polls: list[Poll]
    delta: dict[str, int]


def measure(ctx: Context, server: Server, path: str, dashboards: list[Dashboard], seed: int) -> list[Run]:
    """``dashboards`` holds one per tenant, at least as many as the plan's larger count."""
    plan = ctx.plan
    few, many = plan.ratio_tenants
    groups = {n: dashboards[:n] for n in (few, many)}
    warm = sweep(server.url, path, groups[many])
    if any(a.status != 200 for a in warm):
        raise RuntimeError(f"warming {many} tenants: {sum(a.status != 200 for a in warm)} failed polls")
    runs = []
    for _ in range(plan.repeats):
        for n in (few, many):
            interval = n / plan.ratio_rate
            fleet = Fleet(server.url, path, groups[n], interval, 0.1 * interval, random.Random(seed + n),
                          conditional=False)
            before = ctx.metrics(server)
            fleet.start()
            time.sleep(plan.ratio_seconds)
            fleet.stop()
            runs.append(Run(n, fleet.snapshot(), client.metrics_delta(before, ctx.metrics(server))))
    return runs


def report(ctx: Context, scenario: str, settings: ServerSettings, runs: list[Run]) -> None:
    add = ctx.report.add
    few, many = ctx.plan.ratio_tenants
    label = f"{settings.label}, {ctx.plan.ratio_rate:g} polls/s over {few} vs {many} warm tenants"
    cost = {}
    for n in (few, many):
        polls = [p for r in runs if r.tenants == n for p in r.polls]
        deltas = [r.delta for r in runs if r.tenants == n]
        lookups = sum(d["hits"] + d["misses"] + d["bypasses"] + d["stale"] for d in deltas)
        statements = sum(d["db_statements"] for d in deltas) / max(1, lookups)
        hits = sum(p.x_cache == "HIT" for p in polls)
        cost[n] = median([p.ms for p in polls if p.answered])
        add(scenario, label, f"{n} tenants: polls", len(polls), "polls")
        add(scenario, label, f"{n} tenants: HIT share", round(hits / max(1, len(polls)), 4), "ratio")
        add(scenario, label, f"{n} tenants: database statements per poll", round(statements, 4), "statements",
            target=("<=", 0.01))
        add(scenario, label, f"{n} tenants: latency p50", round(cost[n], 2), "ms")
    add(scenario, label, f"{many} / {few} tenants: latency p50 ratio",
        round(cost[many] / cost[few], 3) if cost[few] else 0.0, "ratio", target=("<=", LATENCY_RATIO))
