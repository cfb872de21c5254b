"""flask cache … and the ``stats`` shell helper, on SimpleCache and on Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from alignwork.extensions import db
from tests.conftest import REDIS_URL, Builder

pytestmark = pytest.mark.usefixtures("afternoon")  # entries are per local date

ROOT = Path(__file__).resolve().parents[1]
STATS = "/api/v1/appointments/mega-stats"


@pytest.fixture
def warmed(cached_app):
    build = Builder(cached_app)
    build.tenant("acme", timezone="America/Recife")
    build.tenant("rival", timezone="Asia/Tokyo")
    client = cached_app.test_client()
    client.get(f"{STATS}?tenantId=acme")
    client.get(f"{STATS}?tenantId=acme&tz=Europe/London")
    client.get(f"{STATS}?tenantId=rival")
    return cached_app


def cli(app, *args):
    """Run ``flask cache ARGS``; its standard output, line by line (notes go to stderr)."""
    result = app.test_cli_runner().invoke(args=["cache", *args])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def rows(lines):
    return [line.split("\t") for line in lines if not line.startswith("#")]


def test_keys_lists_tenant_zone_date_and_ttl(warmed):
    listed = rows(cli(warmed, "keys"))
    assert sorted((r[0], r[1]) for r in listed) == [
        ("acme", "America/Recife"), ("acme", "Europe/London"), ("rival", "Asia/Tokyo")]
    for tenant, zone, day, ttl, state in listed:
        assert len(day) == 10 and day[4] == "-"
        assert ttl.endswith("s") and 0 < int(ttl[:-1]) <= warmed.config["CACHE_DEFAULT_TIMEOUT"]
        assert state == "current"
    assert [r[0] for r in rows(cli(warmed, "keys", "--tenant", "rival"))] == ["rival"]


def test_keys_marks_entries_retired_by_a_write(warmed):
    Builder(warmed).appointments("acme", [(datetime(2026, 1, 5, 12, tzinfo=timezone.utc), "confirmed")])
    states = {(r[0], r[1]): r[4] for r in rows(cli(warmed, "keys"))}
    assert states[("acme", "America/Recife")] == "retired"
    assert states[("rival", "Asia/Tokyo")] == "current"


def test_show_prints_the_cached_value_without_computing(warmed):
    shown = cli(warmed, "show", "acme")
    assert shown[0].startswith("key: ") and "stats:{acme}:America/Recife:" in shown[0]
    assert shown[1].startswith("ttl: ")
    assert [line.split("\t")[0] for line in shown[2:]] == ["today", "week", "month", "nextMonth"]
    assert cli(warmed, "show", "acme", "--tz", "Asia/Kolkata") == [
        "nothing cached for acme in Asia/Kolkata"]
    assert cli(warmed, "show", "acme", "--tz", "Asia/Kolkata") == [
        "nothing cached for acme in Asia/Kolkata"]  # still nothing: show never fills the cache


def test_clear_one_tenant_then_all(warmed):
    assert cli(warmed, "clear", "--tenant", "acme")[0].startswith("removed 2 entries of acme")
    assert [r[0] for r in rows(cli(warmed, "keys"))] == ["rival"]
    client = warmed.test_client()
    assert client.get(f"{STATS}?tenantId=acme").headers["X-Cache"] == "MISS"
    assert client.get(f"{STATS}?tenantId=rival").headers["X-Cache"] == "HIT"
    assert cli(warmed, "clear")[0].startswith("removed 2 entries")
    assert rows(cli(warmed, "keys")) == []


def test_clear_makes_the_next_poll_read_a_tenant_changed_behind_the_apps_back(warmed):
    """A revocation written with psql is unseen while the tenant record is cached; clearing the
    tenant's keys makes the next poll read the row."""
    client = warmed.test_client()
    assert client.get(f"{STATS}?tenantId=acme").status_code == 200
    with warmed.app_context(), db.engine.begin() as psql:
        psql.execute(text("UPDATE tenants SET tokens_revoked_at = :at WHERE id = 'acme'"),
                     {"at": datetime(2030, 1, 1)})
    assert client.get(f"{STATS}?tenantId=acme").status_code == 200
    cli(warmed, "clear", "--tenant", "acme")
    assert client.get(f"{STATS}?tenantId=acme").status_code == 401


def test_clear_never_touches_other_keys_on_a_shared_redis(make_app):
    app = make_app(cache="redis")
    Builder(app).tenant("acme")
    app.test_client().get(f"{STATS}?tenantId=acme")
    neighbour = redis.Redis.from_url(REDIS_URL)
    neighbour.set("someone-else:important", b"keep me", ex=60)
    try:
        cli(app, "clear")
        assert neighbour.get("someone-else:important") == b"keep me"
    finally:
        neighbour.delete("someone-else:important")


def test_warm_stores_every_tenant_in_its_own_zone(make_app):
    app = make_app(cache="redis")
    build = Builder(app)
    build.tenant("acme", timezone="America/Recife")
    build.tenant("rival", timezone="Asia/Tokyo")
    result = app.test_cli_runner().invoke(args=["cache", "warm"])
    assert result.exit_code == 0, result.output
    assert "warmed 2 tenants" in result.output
    assert sorted((r[0], r[1]) for r in rows(cli(app, "keys"))) == [
        ("acme", "America/Recife"), ("rival", "Asia/Tokyo")]
    client = app.test_client()
    assert client.get(f"{STATS}?tenantId=rival").headers["X-Cache"] == "HIT"


def test_warm_refuses_on_simplecache_whose_entries_no_server_would_see(make_app):
    app = make_app(cache="simple")
    Builder(app).tenant("acme")
    result = app.test_cli_runner().invoke(args=["cache", "warm"])
    assert result.exit_code != 0
    assert "not warming" in result.stderr and "not the server's" in result.stderr
    assert "warmed" not in result.output
    assert rows(cli(app, "keys")) == []


@pytest.mark.parametrize("args", [["keys"], ["show", "acme"], ["clear"], ["stats"]])
def test_commands_on_simplecache_say_they_see_only_their_own_process(make_app, args):
    app = make_app(cache="simple")
    Builder(app).tenant("acme")
    result = app.test_cli_runner().invoke(args=["cache", *args])
    assert result.exit_code == 0, result.output
    assert "SimpleCache" in result.stderr and "not the server's" in result.stderr


@pytest.mark.parametrize("args", [["keys"], ["show", "acme"], ["stats"]])
def test_commands_on_redis_say_nothing_of_the_kind(make_app, args):
    app = make_app(cache="redis")
    Builder(app).tenant("acme")
    result = app.test_cli_runner().invoke(args=["cache", *args])
    assert result.exit_code == 0, result.output
    assert "not the server's" not in result.output


def test_warm_exits_non_zero_when_the_cache_is_unreachable(make_app):
    app = make_app(cache="redis", CACHE_REDIS_URL="redis://127.0.0.1:1/0")
    Builder(app).tenant("acme")
    result = app.test_cli_runner().invoke(args=["cache", "warm"])
    assert result.exit_code != 0
    assert "cache unavailable" in result.output


def test_stats_prints_the_metrics(warmed):
    metrics = dict(line.split("\t") for line in cli(warmed, "stats"))
    assert set(metrics) == {"hits", "misses", "bypasses", "stale", "total_requests", "hit_rate",
                            "computations", "precomputed", "precomputed_hits", "db_statements",
                            "avg_hit_time_ms", "avg_miss_time_ms", "cache_size", "listener_running", "listener_connected", "listener_leading",
                            "listener_leader_pid", "listener_lease_age_seconds", "listener_takeovers",
                            "listener_fenced_writes",
                            "listener_changes_applied", "listener_avg_lag_ms",
                            "listener_last_applied_seconds_ago",
                            "streams_open", "streams_refused", "stream_avg_lag_ms", "stream_events"}
    assert int(metrics["misses"]) >= 3 and int(metrics["computations"]) >= 3
    assert int(metrics["cache_size"]) >= 3


def test_flask_shell_has_the_stats_helper(tmp_path):
    env = {**os.environ, "ALIGNWORK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/shell.sqlite",
           "ALIGNWORK_SECRET_KEY": "s" * 40, "FLASK_APP": "alignwork"}
    flask = [sys.executable, "-m", "flask"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*flask, "tenants", "create", "acme"], cwd=ROOT, env=env, check=True, capture_output=True)
    script = "\n".join([
        "print('before', stats.peek('acme'))",
        "print('warm', stats.warm('acme'))",
        "found = stats.peek('acme')",
        "print('key', found['key'])",
        "print('value', sorted(found['value']))",
        "print('names', sorted({'app', 'db', 'cache', 'Tenant', 'Patient', 'Appointment'} & set(globals())))",
    ]) + "\n"
    shell = subprocess.run([*flask, "shell"], cwd=ROOT, env=env, input=script, capture_output=True,
                           text=True, timeout=60)
    out = shell.stdout + shell.stderr
    assert "before None" in out
    assert "warm {'acme': 'MISS'}" in out
    assert "key stats:{acme}:America/Recife:" in out
    assert "value ['month', 'nextMonth', 'today', 'week']" in out
    assert "names ['Appointment', 'Patient', 'Tenant', 'app', 'cache', 'db']" in out


UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.mark.parametrize("args", [["keys"], ["show", "acme"], ["clear"], ["clear", "--tenant", "acme"]])
def test_commands_say_so_when_redis_is_unreachable(make_app, args):
    app = make_app(cache="redis", CACHE_REDIS_URL=UNREACHABLE)
    Builder(app).tenant("acme")
    result = app.test_cli_runner().invoke(args=["cache", *args])
    assert result.exit_code == 1
    assert "cache unavailable" in result.output and "Traceback" not in result.output


def test_cache_metrics_answer_while_redis_is_unreachable(make_app):
    from tests.conftest import token_for

    app = make_app(cache="redis", CACHE_REDIS_URL=UNREACHABLE)
    Builder(app).tenant("acme")
    client = app.test_client()
    assert client.get(f"{STATS}?tenantId=acme").headers["X-Cache"] == "BYPASS"
    admin = {"Authorization": f"Bearer {token_for(app, None, scope='admin')}"}
    response = client.get("/api/v1/appointments/cache-metrics", headers=admin)
    assert response.status_code == 200
    body = response.get_json()
    assert body["cache_size"] is None and body["bypasses"] >= 1


SERVERS = "the server's are on the /ops page and at GET /api/v1/appointments/cache-metrics"


def test_cache_stats_on_simplecache_says_whose_numbers_and_where_the_servers_are(make_app):
    app = make_app(cache="simple")
    result = app.test_cli_runner().invoke(args=["cache", "stats"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("#")]
    assert len(notes) == 1
    assert "this process's own cache, not the server's" in notes[0] and SERVERS in notes[0]
    assert "flask tenants token --admin" in notes[0]


def test_the_shell_says_when_its_stats_helper_sees_only_its_own_cache(cached_app, capsys):
    """Said once, as the shell starts (its context is made), and by the helper's repr: on a
    per-process cache only; a shared cache is the server's own."""
    with cached_app.app_context():
        context = cached_app.make_shell_context()
        printed = capsys.readouterr().err
        helper = repr(context["stats"])
        per_process = cached_app.config["CACHE_TYPE"].endswith("SimpleCache")
    if per_process:
        assert printed.count("\n") == 1 and "not the server's" in printed and SERVERS in printed
        assert "stats sees this process's own cache, not the server's" in helper
    else:
        assert printed == "" and "not the server's" not in helper
