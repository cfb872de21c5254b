"""1. The HIT path, and the 304 a conditional poll gets, against the floor: over HTTP, and in
process (``bench/inprocess.py``: the cost of one request through the WSGI callable, beside a
bare Flask route returning the same body).

The floor route runs in the same app, server and settings but does no auth, cache or database
work, so HIT/floor is the share of the server's capacity the cached path keeps: everything
else (gunicorn, Flask routing, the body, wrk itself on the same cores) is in both. The 304 is
the same request with ``If-None-Match`` naming the current ETag, as a dashboard revalidating
its kept body sends it: no body goes back, so it should come closer to the floor.

Runs alternate HIT, 304, floor, HIT, 304, floor... so that drift on the machine (thermal, other
load) falls on every route alike; medians are reported. Before measuring, every worker must
answer HITs: a warm-up run is repeated until a counting run sees nothing but HITs.
"""

from __future__ import annotations

from .. import client, inprocess
from ..report import median
from ..stack import ServerSettings
from . import FLOOR, MEGA_STATS, Context

SCENARIO = "1 HIT vs floor"
#: Shares of the floor's throughput over HTTP, judged under the shipped worker class (one
#: worker; three for the shared cache) ...
TARGETS = {"HIT": 0.85, "304": 0.9}
SHARED_TARGET = 0.75  # RedisCache with several workers
#: ... and the cost of one request in process, as a multiple of the bare route's.
IN_PROCESS_TARGETS = {"HIT": 1.5, "304": 1.3}
WARMUP_TRIES = 3
#: What gunicorn.conf.py runs by default.
SHIPPED_WORKER_CLASS = "gevent"


def run(ctx: Context) -> None:
    _in_process(ctx)
    _over_http(ctx)


def _in_process(ctx: Context) -> None:
    from . import CLINIC

    ctx.clinic_token()  # seeds the tenant
    caches = ctx.in_process_caches()
    calls, rounds = (200, 3) if ctx.plan.quick else (2000, 7)
    for cache, settings in caches.items():
        found = inprocess.measure({"SQLALCHEMY_DATABASE_URI": ctx.main.url, "SECRET_KEY": "inprocess-" + "k" * 40,
                                   "CACHE_DEFAULT_TIMEOUT": 3600, **settings}, CLINIC, calls, rounds)
        label = f"{cache}, in process"
        for route in ("HIT", "304", "bare route"):
            ctx.report.add(SCENARIO, label, f"{route}: cost per request (median)", round(found[route], 1), "µs")
        for route in ("HIT", "304"):
            # Judged on SimpleCache: on Redis the round trip, not the app, is most of the cost.
            target = ("<=", IN_PROCESS_TARGETS[route]) if cache == "SimpleCache" else None
            ctx.report.add(SCENARIO, label, f"{route} cost / bare route's", round(found[route] / found["bare route"], 2),
                           "ratio", target=target)


def _over_http(ctx: Context) -> None:
    plan = ctx.plan
    token = ctx.clinic_token()
    check = ctx.rotation_file("hit-check.tsv", [(MEGA_STATS, token)])
    for cache in plan.caches:
        for worker_class in plan.worker_classes:
            settings = ServerSettings.deployable(cache, worker_class, plan.workers, plan.threads)
            with ctx.stack.server(ctx.main, settings) as server, \
                    ctx.stack.server(ctx.main, settings, wsgi="bench.bare:app") as bare:
                hit_share = 0.0
                for _ in range(WARMUP_TRIES):
                    ctx.warm(server, MEGA_STATS, token=token)
                    counted = ctx.load(server, MEGA_STATS, 1, rotate=check).xcache or {}
                    hit_share = counted.get("HIT", 0) / max(1, sum(counted.values()))
                    if hit_share == 1.0:
                        break
                ctx.warm(server, FLOOR)
                ctx.warm(bare, FLOOR)
                etag = client.get(server.url + MEGA_STATS, token).etag
                conditional = {"If-None-Match": etag}
                not_modified = client.send(server.url + MEGA_STATS, token, headers=conditional).status == 304
                before = ctx.metrics(server)
                runs = {"HIT": [], "304": [], "floor": [], "bare route": []}
                for _ in range(plan.repeats):
                    runs["HIT"].append(ctx.load(server, MEGA_STATS, plan.run_seconds, token=token))
                    runs["304"].append(ctx.load(server, MEGA_STATS, plan.run_seconds, token=token,
                                                headers=conditional))
                    runs["floor"].append(ctx.load(server, FLOOR, plan.run_seconds))
                    runs["bare route"].append(ctx.load(bare, FLOOR, plan.run_seconds))
                after = ctx.metrics(server)
            _report(ctx, settings, runs, hit_share, not_modified, before, after)


def _report(ctx: Context, settings: ServerSettings, runs, hit_share, not_modified, before, after) -> None:
    add = ctx.report.add
    label = settings.label
    rates = {route: median([r.rate for r in results]) for route, results in runs.items()}
    for route in runs:
        add(SCENARIO, label, f"{route} throughput (median)", rates[route], "req/s")
    for route in ("HIT", "304"):
        # The floor route inside the app pays its hooks; the bare route (another gunicorn, the
        # same settings, a Flask app with nothing else) is the measure, and judged.
        ratio = round(rates[route] / rates["floor"], 3) if rates["floor"] else 0.0
        add(SCENARIO, label, f"{route} / floor throughput", ratio, "ratio")
        target = None
        if settings.worker_class == SHIPPED_WORKER_CLASS:
            target = (">=", TARGETS[route] if settings.workers == 1 else SHARED_TARGET)
        bare = round(rates[route] / rates["bare route"], 3) if rates["bare route"] else 0.0
        add(SCENARIO, label, f"{route} / bare route throughput", bare, "ratio", target=target)
    for route, results in runs.items():
        add(SCENARIO, label, f"{route} p50 (median)", median([r.p50 for r in results]), "ms")
        add(SCENARIO, label, f"{route} p99 (median)", median([r.p99 for r in results]), "ms")
    add(SCENARIO, label, "failed requests (all runs)", sum(r.failed for rs in runs.values() for r in rs),
        "requests", target=("==", 0))
    add(SCENARIO, label, "HIT share before measuring (X-Cache)", round(100 * hit_share, 1), "%")
    add(SCENARIO, label, "If-None-Match with the current ETag answered 304", int(not_modified), "yes=1",
        target=("==", 1))
    if before is not None and after is not None:
        measured = sum(r.requests for route in ("HIT", "304") for r in runs[route])
        non_hits = (after["misses"] - before["misses"]) + (after["bypasses"] - before["bypasses"])
        add(SCENARIO, label, f"non-HITs among {measured} measured (cache-metrics)", non_hits, "requests")
