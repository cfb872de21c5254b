"""5. Growth: worker memory as distinct keys pile up, and the HIT path with many tenants.

Memory. SimpleCache keeps its entries in each worker, so that is where memory could grow without
bound. With dashboards polling, every worker ends up holding every key that is polled, so the
worst case per worker is measured directly: one worker receives every key. Keys are distinct
(tenant, zone) pairs on tenants with no appointments (the entry has the same size whatever the
counts), each requested once by wrk. Phase 1 requests ``tenants × zones`` keys, phase 2 as many
new ones; with the default ``CACHE_THRESHOLD`` of 10 000 the second phase should add little.

Polling. On the normal deployment, HIT throughput with one tenant polling against all of them
polling (wrk rotating their tokens), alternated like the floor comparison. The share of HITs is
counted, because with SimpleCache a worker only has the keys it has been asked for.
"""

from __future__ import annotations

from .. import client
from ..report import median
from ..stack import ServerSettings
from . import MEGA_STATS, Context, zones as all_zones

SCENARIO = "5 growth"
#: Growth of the second phase, as a share of the first, under which memory counts as bounded.
BOUNDED_SHARE = 0.25
#: Allowance for allocator noise in the boundedness check.
NOISE_MIB = 2.0


def run(ctx: Context) -> None:
    tokens = _tenants(ctx)
    _memory(ctx, tokens)
    _polling(ctx, tokens)


def _tenants(ctx: Context) -> dict[str, str]:
    """The growth tenants (made in bulk through the service, as ``flask tenants create`` would
    one by one) and a token for each."""
    from alignwork.auth import issue_token
    from alignwork.services.tenants import create_tenant, get_tenant
    from alignwork.services.exceptions import NotFound

    app = ctx.stack.app(ctx.main)
    width = len(str(ctx.plan.growth_tenants))
    ids = [f"growth-{n:0{width}d}" for n in range(1, ctx.plan.growth_tenants + 1)]
    ctx.stack.log.comment(
        f"flask --app alignwork tenants create {ids[0]} … {ids[-1]}: done in one process through "
        "the same service (create_tenant), with a token for each from issue_token"
    )
    with app.app_context():
        for tenant_id in ids:
            try:
                get_tenant(tenant_id)
            except NotFound:
                create_tenant(tenant_id)
        return {tenant_id: issue_token(tenant_id, 24 * 3600) for tenant_id in ids}


def _memory(ctx: Context, tokens: dict[str, str]) -> None:
    plan = ctx.plan
    zones = all_zones()[: 2 * plan.growth_zones]
    phases = [zones[: plan.growth_zones], zones[plan.growth_zones:]]
    settings = ServerSettings("simple", "sync", workers=1)
    label = f"{settings.label} (one worker holds every key)"
    keys_per_phase = len(tokens) * plan.growth_zones
    with ctx.stack.server(ctx.main, settings) as server:
        for _ in range(3):  # every code path of a request run once, as in a worker in use
            client.get(server.url + MEGA_STATS, next(iter(tokens.values())))
        rss = [max(server.rss_mib().values())]
        fills = []
        for number, phase_zones in enumerate(phases, 1):
            lines = [(f"{MEGA_STATS}?tz={zone}", token) for zone in phase_zones for token in tokens.values()]
            path = ctx.rotation_file(f"growth-phase{number}.tsv", lines)
            fills.append(ctx.load(server, MEGA_STATS, _bound(keys_per_phase), rotate=path, once=True,
                                  connections=min(4, plan.connections)))
            rss.append(max(server.rss_mib().values()))

    add = ctx.report.add
    add(SCENARIO, label, "worker RSS, warm, before the keys", rss[0], "MiB")
    add(SCENARIO, label, f"worker RSS after {keys_per_phase} distinct keys", rss[1], "MiB")
    add(SCENARIO, label, f"worker RSS after {2 * keys_per_phase} distinct keys", rss[2], "MiB")
    first_growth, second_growth = rss[1] - rss[0], rss[2] - rss[1]
    limit = BOUNDED_SHARE * max(first_growth, 0.0) + NOISE_MIB
    add(SCENARIO, label, f"RSS added by keys {keys_per_phase + 1}–{2 * keys_per_phase}", round(second_growth, 1),
        "MiB", target=("<=", round(limit, 1)))
    for number, fill in enumerate(fills, 1):
        counted = fill.xcache or {}
        add(SCENARIO, label, f"phase {number}: MISS answers", counted.get("MISS", 0), "requests")
        add(SCENARIO, label, f"phase {number}: MISS throughput", fill.rate, "req/s")
        add(SCENARIO, label, f"phase {number}: failed requests", fill.failed, "requests", target=("==", 0))


def _bound(keys: int) -> int:
    """wrk's duration for a once-through pass: generous (it is interrupted when done)."""
    return max(10, keys // 20)


def _polling(ctx: Context, tokens: dict[str, str]) -> None:
    plan = ctx.plan
    settings = ServerSettings.deployable("simple", "sync", plan.workers, plan.threads)
    one = ctx.rotation_file("poll-one.tsv", [(MEGA_STATS, next(iter(tokens.values())))])
    every = ctx.rotation_file("poll-all.tsv", [(MEGA_STATS, token) for token in tokens.values()])
    with ctx.stack.server(ctx.main, settings) as server:
        # Every worker must have seen every tenant: a few passes over all of them.
        ctx.load(server, MEGA_STATS, _warmup(plan, len(tokens)), rotate=every)
        ctx.warm(server, MEGA_STATS, rotate=one)
        singles, manys = [], []
        for _ in range(plan.repeats):
            singles.append(ctx.load(server, MEGA_STATS, plan.run_seconds, rotate=one))
            manys.append(ctx.load(server, MEGA_STATS, plan.run_seconds, rotate=every))

    add = ctx.report.add
    label = settings.label
    n = len(tokens)
    single_rate, many_rate = median([r.rate for r in singles]), median([r.rate for r in manys])
    add(SCENARIO, label, "HIT throughput, 1 tenant polling (median)", single_rate, "req/s")
    add(SCENARIO, label, f"throughput, {n} tenants polling (median)", many_rate, "req/s")
    add(SCENARIO, label, f"{n} tenants / 1 tenant throughput", round(many_rate / single_rate, 3) if single_rate else 0.0,
        "ratio")
    add(SCENARIO, label, "p99, 1 tenant (median)", median([r.p99 for r in singles]), "ms")
    add(SCENARIO, label, f"p99, {n} tenants (median)", median([r.p99 for r in manys]), "ms")
    counted = [r.xcache or {} for r in manys]
    hits, total = sum(c.get("HIT", 0) for c in counted), sum(sum(c.values()) for c in counted)
    add(SCENARIO, label, f"HIT share, {n} tenants (X-Cache)", round(100 * hits / max(1, total), 1), "%")
    add(SCENARIO, label, "failed requests (all runs)", sum(r.failed for r in singles + manys), "requests",
        target=("==", 0))


def _warmup(plan, tenants: int) -> int:
    """Long enough for several passes over every tenant, so each worker has each key."""
    return max(1, plan.warmup_seconds, min(15, tenants // 66))
