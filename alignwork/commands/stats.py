"""``flask stats``: maintain the data behind mega-stats."""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app

from ..services import rollup
from ..services.changes import listener, record
from ..services.exceptions import ServiceError
from .refusals import MigratedGroup

stats_cli = MigratedGroup("stats", help="Maintain the data behind mega-stats.")


@stats_cli.command("rebuild-counts")
@click.option("--tenant", help="Only this tenant.")
def rebuild_command(tenant: str | None) -> None:
    """Recompute the 15-minute rollup from the appointments table.

    Safe while the service runs: on PostgreSQL it holds LOCK TABLE appointments IN SHARE MODE
    for the length of its transaction (writes of every tenant wait, reads go on; it gives up
    after 10 s without the lock); on SQLite the database's write lock. Its commit invalidates the
    cached stats of the tenants it rebuilt.
    """
    try:
        counted = rollup.rebuild_counts(tenant)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"rebuilt counts from {counted} appointments")


@stats_cli.command("check-counts")
@click.option("--tenant", help="Only this tenant.")
def check_command(tenant: str | None) -> None:
    """Compare the rollup with the appointments; exit 1 if any tenant's counts differ.

    Read-only, one statement, no locks: fit for a nightly cron. Each tenant that differs is
    printed with, per status, the rollup minus the appointments and the buckets that differ.
    """
    try:
        drift = rollup.check_counts(tenant)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc
    for tenant_id, statuses in drift.tenants.items():
        parts = [f"{status} {difference:+d} in {buckets} bucket{'s' if buckets != 1 else ''}"
                 for status, (difference, buckets) in statuses.items()]
        click.echo(f"{tenant_id}: " + ", ".join(parts) + " (rollup minus appointments)")
    verdict = "counts exact" if drift.exact else f"{len(drift.tenants)} tenant(s) differ"
    click.echo(f"{verdict}; checked in {drift.seconds:.2f} s")
    if not drift.exact:
        raise SystemExit(1)


@stats_cli.command("listen")
def listen_command() -> None:
    """Run the change listener in the foreground, until SIGTERM or Ctrl-C.

    For deployments that run it as its own unit (with CHANGE_LISTENER=off in the servers); the
    gunicorn workers otherwise run it themselves. Several at once are safe.
    """
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    app = current_app._get_current_object()
    click.echo(f"listening for changes every {app.config['CHANGE_LISTENER_INTERVAL']} s (Ctrl-C stops)")
    listener.ChangeListener(app).run(stop)


@stats_cli.command("new-epoch")
def new_epoch_command() -> None:
    """Start a new epoch: every cached generation is replaced, once.

    Run it after restoring the database from a backup: the restored versions are older than
    some the cache has seen, and a new epoch keeps any of them from matching an old entry.
    """
    click.echo(f"new epoch {record.start_new_epoch()}; the listener replaces every generation")


def init_app(app) -> None:
    app.cli.add_command(stats_cli)
