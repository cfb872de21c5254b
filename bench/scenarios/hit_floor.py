"""1. The HIT path against the floor.

The floor route runs in the same app, server and settings but does no auth, cache or database
work, so HIT/floor is the share of the server's capacity the cached path keeps: everything
else (gunicorn, Flask routing, the body, wrk itself on the same cores) is in both.

Runs alternate HIT, floor, HIT, floor... so that drift on the machine (thermal, other load)
falls on both sides alike; medians are reported. Before measuring, every worker must answer
HITs: with SimpleCache each worker has its own cache, so a warm-up run is repeated until a
counting run sees nothing but HITs.
"""

from __future__ import annotations

from ..report import median
from ..stack import ServerSettings
from . import FLOOR, MEGA_STATS, Context

SCENARIO = "1 HIT vs floor"
TARGETS = {"simple": 0.85, "redis": 0.70, "cluster": 0.70}
WARMUP_TRIES = 3


def run(ctx: Context) -> None:
    plan = ctx.plan
    token = ctx.clinic_token()
    check = ctx.rotation_file("hit-check.tsv", [(MEGA_STATS, token)])
    for cache in plan.caches:
        for worker_class in plan.worker_classes:
            settings = ServerSettings(cache, worker_class, plan.workers, plan.threads)
            with ctx.stack.server(ctx.main, settings) as server:
                hit_share = 0.0
                for _ in range(WARMUP_TRIES):
                    ctx.warm(server, MEGA_STATS, token=token)
                    counted = ctx.load(server, MEGA_STATS, 1, rotate=check).xcache or {}
                    hit_share = counted.get("HIT", 0) / max(1, sum(counted.values()))
                    if hit_share == 1.0:
                        break
                ctx.warm(server, FLOOR)
                before = ctx.metrics(server)
                hits, floors = [], []
                for _ in range(plan.repeats):
                    hits.append(ctx.load(server, MEGA_STATS, plan.run_seconds, token=token))
                    floors.append(ctx.load(server, FLOOR, plan.run_seconds))
                after = ctx.metrics(server)
            _report(ctx, settings, hits, floors, hit_share, before, after)


def _report(ctx: Context, settings: ServerSettings, hits, floors, hit_share, before, after) -> None:
    add = ctx.report.add
    label = settings.label
    hit_rate, floor_rate = median([r.rate for r in hits]), median([r.rate for r in floors])
    add(SCENARIO, label, "HIT throughput (median)", hit_rate, "req/s")
    add(SCENARIO, label, "floor throughput (median)", floor_rate, "req/s")
    add(SCENARIO, label, "HIT / floor throughput", round(hit_rate / floor_rate, 3) if floor_rate else 0.0, "ratio",
        target=(">=", TARGETS[settings.cache]))
    add(SCENARIO, label, "HIT p50 (median)", median([r.p50 for r in hits]), "ms")
    add(SCENARIO, label, "HIT p99 (median)", median([r.p99 for r in hits]), "ms")
    add(SCENARIO, label, "floor p50 (median)", median([r.p50 for r in floors]), "ms")
    add(SCENARIO, label, "floor p99 (median)", median([r.p99 for r in floors]), "ms")
    add(SCENARIO, label, "failed requests (all runs)", sum(r.failed for r in hits + floors), "requests",
        target=("==", 0))
    add(SCENARIO, label, "HIT share before measuring (X-Cache)", round(100 * hit_share, 1), "%")
    if before is not None and after is not None:
        measured = sum(r.requests for r in hits)
        non_hits = (after["misses"] - before["misses"]) + (after["bypasses"] - before["bypasses"])
        add(SCENARIO, label, f"non-HITs among {measured} measured (cache-metrics)", non_hits, "requests")
