"""``flask stats``: maintain the data behind mega-stats."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from ..services import stats

stats_cli = AppGroup("stats", help="Maintain the data behind mega-stats.")


@stats_cli.command("rebuild-counts")
@click.option("--tenant", help="Only this tenant.")
def rebuild_command(tenant: str | None) -> None:
    """Recompute the 15-minute rollup from the appointments table."""
    counted = stats.rebuild_counts(tenant)
    click.echo(f"rebuilt counts from {counted} appointments")


def init_app(app) -> None:
    app.cli.add_command(stats_cli)
