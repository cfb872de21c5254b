"""6. Where a HIT's time goes: pyinstrument over the HIT path and over the floor.

Run in-process through Flask's test client (no gunicorn, no wrk), so the tree shows the
application's own work per request: on SimpleCache, and on RedisCache when the run measures it,
since there the cache read is a network round trip. A missed HIT/floor target is read
against it: everything under the view, the tenancy hook and the metrics hooks is what the
floor does not do.
"""

from __future__ import annotations

import time

from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer

from . import CLINIC, FLOOR, MEGA_STATS, Context

SCENARIO = "6 profile"
REQUESTS = 3000
# The test client's own frames are noise here: they are not part of a served request. The
# libraries the cached path goes through are shown, not folded away as library code.
HIDE = r".*/(werkzeug/test|flask/testing)\.py"
SHOW = r".*/(webargs|flask_smorest|marshmallow|itsdangerous|prometheus_client|flask_caching|cachelib|redis)/.*"

READING = """Reading the profiles: the floor pays Flask's request, routing, response and the
metrics hooks. A HIT is answered by the poll's fast path (alignwork/fast_path.py) in front of
Flask: a remembered query and token, one cache read with the tenant record, the revocation
check, the headers and the metrics; Flask itself is not entered. On RedisCache the extra cost is
the MGET round trip: with gunicorn's workers, wrk and redis-server sharing two cores, each round
trip is two context switches on a saturated CPU; a Redis on its own host costs the web workers
far less CPU per HIT."""


def run(ctx: Context) -> None:
    from alignwork import create_app
    from bench.floor import with_floor
    from alignwork.auth import issue_token

    ctx.clinic_token()  # seeds the tenant
    caches = ctx.in_process_caches()
    requests = 300 if ctx.plan.quick else REQUESTS
    for cache, settings in caches.items():
        app = with_floor(create_app({"SQLALCHEMY_DATABASE_URI": ctx.main.url,
                                     "SECRET_KEY": "profile-" + "k" * 40, "CACHE_DEFAULT_TIMEOUT": 3600,
                                     **settings}))
        with app.app_context():
            headers = {"Authorization": f"Bearer {issue_token(CLINIC, 3600)}"}
        client = app.test_client()
        routes = [("HIT", MEGA_STATS, {"headers": headers})]
        if cache == "SimpleCache":  # the floor touches no cache: profiled once
            routes.append(("floor", FLOOR, {}))
        for name, path, kwargs in routes:
            assert client.get(path, **kwargs).status_code == 200  # warm: the stats are cached now
            text, per_request = _profile(client, path, kwargs, requests)
            ctx.report.add(SCENARIO, f"{cache}, in-process", f"{name}: time per request (profiled)",
                           round(per_request * 1e6), "µs")
            ctx.report.section(f"Profile: {name} on {cache} ({requests} requests, pyinstrument, frames ≥ 2 %)",
                               "```\n" + text.strip("\n") + "\n```")
    ctx.report.section("Profile: reading", READING)


def _profile(client, path: str, kwargs: dict, requests: int) -> tuple[str, float]:
    profiler = Profiler(interval=0.0001)
    started = time.perf_counter()
    profiler.start()
    for _ in range(requests):
        client.get(path, **kwargs)
    profiler.stop()
    elapsed = time.perf_counter() - started
    renderer = ConsoleRenderer(unicode=False, color=False, time="percent_of_total",
                               processor_options={"filter_threshold": 0.02, "hide_regex": HIDE,
                                                  "show_regex": SHOW})
    text = profiler.output(renderer)
    # Keep the call tree only: the banner carries the clock time and this file's location.
    tree = text[text.index("\n100.0%"):] if "\n100.0%" in text else text
    return tree, elapsed / requests
