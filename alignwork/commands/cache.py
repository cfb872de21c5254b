"""``flask cache``: look inside the stats cache and manage it (only this app's keys).

The commands share their operations with the ``stats`` helper of ``flask shell``
(``commands/shell.py``). On the Redis types they see the cache every worker shares (on a
cluster, every primary). On SimpleCache
each process has its own cache in its own memory: a ``flask`` command sees only the empty cache
of its own short life, never the server's, so every command says so, and ``warm`` refuses
rather than report warming that no server will ever see.
"""

from __future__ import annotations

from datetime import datetime, timezone

import click
from flask import current_app

from ..services.stats import operators
from ..services.exceptions import ServiceError
from ..services.tenants import get_tenant
from .refusals import MigratedGroup
from .shell import SERVERS_NUMBERS, StatsShell, own_cache_notice, tenants_named, warm_one


class _CacheGroup(MigratedGroup):
    """Every ``flask cache`` command reports an unreachable cache as one line and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except operators.CacheUnavailable as exc:
            raise click.ClickException(f"cache unavailable: {exc}") from exc


cache_cli = _CacheGroup("cache", help="Inspect and manage the stats cache (only this app's keys).")


def _per_process() -> bool:
    return not operators.cache_is_shared()


def _backend_note() -> str:
    if current_app.config["CACHE_TYPE"].endswith(".NullCache"):
        return "caching off"
    return "this process only" if _per_process() else "shared"


PER_PROCESS = (
    "CACHE_TYPE is SimpleCache: each process has its own cache, so this command sees only the "
    "cache of this flask process, not the server's, and cannot change the server's. "
    f"With RedisCache it works on the cache the server uses; meanwhile {SERVERS_NUMBERS}."
)


def _say_if_per_process() -> None:
    if _per_process():
        click.echo(f"# {PER_PROCESS}", err=True)


@cache_cli.command("keys")
@click.option("--tenant", help="Only this tenant's entries.")
def keys_command(tenant: str | None) -> None:
    """One line per entry: tenant, zone, local date, seconds left, current or retired."""
    _say_if_per_process()
    entries = StatsShell().keys(tenant)
    click.echo(f"# {len(entries)} entries ({_backend_note()})", err=True)
    for entry in entries:
        ttl = "never" if entry["ttl"] is None else f"{entry['ttl']:.0f}s"
        state = "current" if entry["current"] else "retired"
        click.echo(f"{entry['tenant']}\t{entry['tz']}\t{entry['date']}\t{ttl}\t{state}")


@cache_cli.command("show")
@click.argument("tenant")
@click.option("--tz", help="IANA zone (default: the tenant's).")
def show_command(tenant: str, tz: str | None) -> None:
    """What mega-stats would serve from the cache now for TENANT; computes nothing."""
    _say_if_per_process()
    try:
        found = StatsShell().peek(tenant, tz)
    except (ServiceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if found is None:
        click.echo(f"nothing cached for {tenant} in {tz or get_tenant(tenant).timezone}")
        return
    click.echo(f"key: {found['key']}")
    click.echo(f"ttl: {found['ttl']:.1f}s" if found["ttl"] is not None else "ttl: never")
    for period, counts in found["value"].items():
        click.echo(f"{period}\tconfirmed={counts['confirmed']}\tpending={counts['pending']}")


@cache_cli.command("clear")
@click.option("--tenant", help="Only this tenant's entries.")
def clear_command(tenant: str | None) -> None:
    """Delete this app's stats entries (never the rest of a shared Redis)."""
    _say_if_per_process()
    removed = StatsShell().clear(tenant)
    click.echo(f"removed {removed} entries{' of ' + tenant if tenant else ''} ({_backend_note()})")


@cache_cli.command("warm")
@click.option("--tenant", help="Only this tenant.")
def warm_command(tenant: str | None) -> None:
    """Compute and store each tenant's stats in its own zone; exits non-zero if any failed."""
    if _per_process():
        raise click.ClickException(
            "not warming: " + PER_PROCESS + " Warming would fill this process's cache, which is "
            "thrown away when the command ends."
        )
    try:
        tenants = tenants_named(tenant)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc
    failed = []
    with click.progressbar(tenants, label="warming", item_show_func=lambda t: t.id if t else "") as bar:
        for info in bar:
            try:
                if warm_one(info.id) == "BYPASS":
                    failed.append(f"{info.id}: cache unavailable")
            except Exception as exc:  # noqa: BLE001 - reported, and the exit code says so
                failed.append(f"{info.id}: {type(exc).__name__}: {exc}")
    if failed:
        raise click.ClickException("could not warm " + "; ".join(failed))
    click.echo(f"warmed {len(tenants)} tenants at {datetime.now(timezone.utc):%Y-%m-%d %H:%M}Z")


@cache_cli.command("stats")
def stats_command() -> None:
    """Cache metrics (summed over the server's workers under gunicorn)."""
    if notice := own_cache_notice("these numbers count"):
        click.echo(f"# {notice}", err=True)
    for name, value in StatsShell().metrics().items():
        click.echo(f"{name}\t{value}")


def init_app(app) -> None:
    app.cli.add_command(cache_cli)
