"""``python -m bench``: run the plan, print the table, write the results file.

Scenarios run one after another; one that fails is reported in the notes and the others still
run, so a long run is never thrown away for one broken step (the exit status is then 1). All
servers, scratch databases and cache keys the run made are removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import wrk
from .commands import CommandLog
from .databases import Database, postgres_problem, postgres_scratch, server_version, sqlite
from .plan import Plan, parse_args
from .report import Report, machine, previous_ratios, regressions
from .scenarios import (Context, change_latency, fleet, growth, hit_floor, listener_idle, midnight, miss_scale,
                        outage, profile, stampede, streams)
from .stack import STATS_TTL, Stack

RUNNERS = {"hit": hit_floor.run, "miss": miss_scale.run, "stampede": stampede.run,
           "outage": outage.run, "growth": growth.run, "profile": profile.run, "fleet": fleet.run,
           "latency": change_latency.run, "midnight": midnight.run,
           "listener": listener_idle.run, "streams": streams.run}
DEFAULT_OUTPUT = Path(__file__).with_name("RESULTS.md")


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    try:
        wrk_version = wrk.version()
    except wrk.WrkMissing as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    invocation = ("python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])).strip()
    report = Report("AlignWork benchmark" + (" (quick: harness check, not a measurement)" if plan.quick else ""))
    log = CommandLog()
    log.hide(str(Path(shutil.which("wrk")).parent) + "/", "")
    failed = False
    with contextlib.ExitStack() as cleanup:
        run_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="alignwork-bench-")))
        stack = Stack(run_dir, log, plan.redis_url)
        plan = _usable(plan, report)
        if "redis" in plan.caches:
            cleanup.callback(_delete_redis_keys, plan.redis_url, stack.key_prefix)
        if "cluster" in plan.caches and {"hit", "stampede"} & set(plan.scenarios):
            plan = _start_cluster(plan, stack, report, cleanup)
        databases = _databases(plan, stack, cleanup)
        cleanup.callback(stack.close_apps)  # before the scratch database is dropped
        extra = {"wrk": wrk_version, **{db.label: server_version(db) for db in databases.values()},
                 "redis-server": _redis_version()}
        ctx = Context(plan, stack, report, databases)
        _note_settings(ctx)
        for name in plan.scenarios:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            begun = time.monotonic()
            try:
                RUNNERS[name](ctx)
            except Exception as exc:  # noqa: BLE001 - report it and go on with the next
                failed = True
                report.notes.append(f"Scenario {name!r} failed: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            print(f"bench: {name} took {time.monotonic() - begun:.0f} s", file=sys.stderr, flush=True)
        _note_metrics(ctx)
        _compare_cluster(ctx)
    seconds = time.monotonic() - started
    output = Path(plan.output) if plan.output else DEFAULT_OUTPUT
    for warning in regressions(previous_ratios(_read(output)), report.rows):
        print(f"bench: warning: {warning}", file=sys.stderr)
        report.notes.append(f"Warning: {warning}.")
    text = report.markdown(machine(extra), log.lines(), invocation, seconds)
    output.write_text(text, encoding="utf-8")
    print(report.table())
    print(f"\n{len(report.missed())} targets missed; {len(report.rows)} rows in {seconds:.0f} s; "
          f"written to {output}", file=sys.stderr)
    return 1 if failed else 0


def _read(path: Path) -> str:
    """An earlier results file, to compare with; none is no comparison."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _usable(plan: Plan, report: Report) -> Plan:
    """Drop what this machine cannot run, saying so in the notes."""
    import dataclasses

    if "postgresql" in plan.databases and (problem := postgres_problem(plan.postgres_url)):
        report.notes.append(f"PostgreSQL not measured: {problem}.")
        plan = dataclasses.replace(plan, databases=tuple(d for d in plan.databases if d != "postgresql"))
    if "redis" in plan.caches and (problem := _redis_problem(plan.redis_url)):
        report.notes.append(f"RedisCache not measured: {problem}.")
        plan = dataclasses.replace(plan, caches=tuple(c for c in plan.caches if c != "redis"))
    if "cluster" in plan.caches and not (shutil.which("redis-server") and shutil.which("redis-cli")):
        report.notes.append("RedisClusterCache not measured: it needs redis-server and redis-cli.")
        plan = dataclasses.replace(plan, caches=tuple(c for c in plan.caches if c != "cluster"))
    if "outage" in plan.scenarios and shutil.which("redis-server") is None:
        report.notes.append("Outage not measured: redis-server is not installed.")
        plan = dataclasses.replace(plan, scenarios=tuple(s for s in plan.scenarios if s != "outage"))
    if not plan.databases:
        plan = dataclasses.replace(plan, databases=("sqlite",))
    return plan


def _start_cluster(plan: Plan, stack: Stack, report: Report, cleanup: contextlib.ExitStack) -> Plan:
    """The run's own Redis Cluster, stopped (with everything on it) when the run ends; if it
    cannot be started, the run goes on without it and says why."""
    import dataclasses

    try:
        cleanup.enter_context(stack.own_cluster())
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        report.notes.append(f"RedisClusterCache not measured: the cluster did not start ({exc}).")
        return dataclasses.replace(plan, caches=tuple(c for c in plan.caches if c != "cluster"))
    return plan


def _databases(plan: Plan, stack: Stack, cleanup: contextlib.ExitStack) -> dict[str, Database]:
    databases = {}
    for kind in plan.databases:
        if kind == "sqlite":
            database = sqlite(stack.run_dir)
        else:
            database = cleanup.enter_context(postgres_scratch(plan.postgres_url))
            stack.log.hide(database.url, "postgresql+psycopg://$POSTGRES/$SCRATCH_DATABASE")
        stack.migrate(database)
        databases[kind] = database
    return databases


def _note_settings(ctx: Context) -> None:
    plan = ctx.plan
    ctx.report.notes += [
        f"The HTTP scenarios (1, 3, 4, 5, 7) serve from {ctx.main.label}; gunicorn runs with "
        f"`gunicorn.conf.py`, ALIGNWORK_ENV=production, no access log (GUNICORN_ACCESS_LOG empty) and "
        f"CACHE_DEFAULT_TIMEOUT={STATS_TTL} so no entry expires mid-measurement (a HIT costs the same). "
        f"wrk: 1 thread, {plan.connections} connections, {plan.run_seconds} s per measurement, "
        "on the same cores as the server.",
        f"HIT vs floor: {plan.repeats} HIT, {plan.repeats} 304 (If-None-Match with the current ETag) "
        f"and {plan.repeats} floor runs alternated; medians. Targets under sync workers: HIT/floor ≥ 0.75, "
        "304/floor ≥ 0.85 (gthread reported, not judged). On SimpleCache the server has one worker, "
        "the only deployment production accepts for a per-process cache.",
        "Fleet: dashboards are Python threads sending http.client requests (a light, timed load, "
        "not a throughput test); statements and computations are the server's own counters "
        "(cache-metrics deltas); the stale-answer check is bench/freshness.py.",
        "MISS: `compute_stats` called in-process; the 50 ms target is judged on the median at 1M. "
        "PostgreSQL is VACUUM ANALYZEd after the bulk load, as autovacuum would soon do.",
        "RedisClusterCache: three primaries (no replicas) started for the run on the same machine, "
        "so a HIT is one MGET to one of them, as with one Redis; the row 'HIT throughput, cluster / "
        "one Redis' compares the two HIT medians.",
        "Growth: the boundedness target is that the second batch of keys adds at most a quarter "
        "of what the first added, plus 2 MiB of allocator noise.",
    ]


def _note_metrics(ctx: Context) -> None:
    if not any(s in ctx.plan.scenarios for s in ("hit", "stampede")):
        return
    if not any("cache-metrics" in row.measure for row in ctx.report.rows):
        ctx.report.notes.append(
            "GET /api/v1/appointments/cache-metrics did not answer counters, so computations are "
            "counted from X-Cache answers only."
        )


def _compare_cluster(ctx: Context) -> None:
    """One row per worker class: the cluster's HIT throughput over one Redis's, from the HIT
    scenario's medians (both measured against the same floor, in the same run)."""
    medians = {row.configuration: row.value for row in ctx.report.rows
               if row.scenario == hit_floor.SCENARIO and row.measure == "HIT throughput (median)"}
    for configuration, value in medians.items():
        single = configuration.replace("RedisClusterCache", "RedisCache", 1)
        if configuration.startswith("RedisClusterCache") and medians.get(single):
            ctx.report.add(hit_floor.SCENARIO, configuration, "HIT throughput, cluster / one Redis",
                           round(value / medians[single], 3), "ratio")


def _redis_problem(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis not reachable ({type(exc).__name__})"
    return None


def _delete_redis_keys(url: str, prefix: str) -> None:
    """Remove what the run wrote to the shared Redis (bounded: the run wrote few keys)."""
    import redis

    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        for _ in range(1000):
            keys = list(client.scan_iter(match=prefix + "*", count=1000))[:10_000]
            if not keys:
                break
            client.delete(*keys)


def _redis_version() -> str:
    path = shutil.which("redis-server")
    if path is None:
        return "not installed"
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    return out.stdout.strip().split(" sha=")[0]


if __name__ == "__main__":
    sys.exit(main())
