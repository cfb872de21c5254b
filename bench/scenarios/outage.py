"""4. Outage: the cache's Redis stops in the middle of steady load, then comes back.

Three wrk runs back to back against one server: before, during (Redis stopped just before the
run, started again just after it) and after. Keeping them separate gives each phase its own p99
and failure count from wrk itself, with no reconstruction from timestamps. The Redis is one this
run started, never a shared one; it keeps nothing on disk, so it returns empty, as a replaced
node would. "Failed" is what a client sees: non-2xx answers plus socket errors and timeouts.
"""

from __future__ import annotations

from ..stack import ServerSettings
from . import MEGA_STATS, Context

SCENARIO = "4 outage"


def run(ctx: Context) -> None:
    plan = ctx.plan
    if "redis" not in plan.caches:
        ctx.report.notes.append("Outage not measured: it needs RedisCache (run without --cache simple).")
        return
    token = ctx.clinic_token()
    lines = ctx.rotation_file("outage.tsv", [(MEGA_STATS, token)])
    with ctx.stack.own_redis() as redis_server:
        settings = ServerSettings("redis", plan.worker_classes[0], plan.workers, plan.threads,
                                  redis_url=redis_server.url)
        with ctx.stack.server(ctx.main, settings) as server:
            ctx.warm(server, MEGA_STATS, token=token)
            phases = {"before": ctx.load(server, MEGA_STATS, plan.outage_seconds, rotate=lines)}
            redis_server.stop()
            try:
                phases["during"] = ctx.load(server, MEGA_STATS, plan.outage_seconds, rotate=lines)
            finally:
                redis_server.start()
            phases["after"] = ctx.load(server, MEGA_STATS, plan.outage_seconds, rotate=lines)

    add = ctx.report.add
    for phase, result in phases.items():
        label = f"{settings.label}, Redis {'stopped' if phase == 'during' else 'up'} ({phase})"
        add(SCENARIO, label, f"requests in {plan.outage_seconds} s", result.requests, "requests")
        add(SCENARIO, label, "failed requests", result.failed, "requests")
        add(SCENARIO, label, "p50", result.p50, "ms")
        add(SCENARIO, label, "p99", result.p99, "ms")
        counted = result.xcache or {}
        add(SCENARIO, label, "answered BYPASS (X-Cache)", counted.get("BYPASS", 0), "requests")
    total = sum(r.failed for r in phases.values())
    add(SCENARIO, f"{settings.label}, all three phases", "failed requests", total, "requests", target=("==", 0))
