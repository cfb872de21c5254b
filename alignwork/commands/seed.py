"""``flask seed``: deterministic demo data."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..services.exceptions import ServiceError
from ..services.seeding import seed_tenant
from .refusals import needs_migrated_database


@click.command("seed")
@with_appcontext
@needs_migrated_database
@click.option("--tenant", "tenant_id", default="demo", show_default=True)
@click.option("--name", help="Display name, if the tenant is created (defaults to the id).")
@click.option("--appointments", "count", type=click.IntRange(0, 10_000_000), default=1000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed: same seed, same data.")
@click.option("--if-empty", is_flag=True, help="Do nothing if the tenant already has appointments.")
def seed_command(tenant_id: str, name: str | None, count: int, seed: int, if_empty: bool) -> None:
    """Load deterministic demo appointments (creates the tenant if it does not exist)."""
    with click.progressbar(length=count, label=f"seeding {tenant_id}") as bar:
        try:
            inserted = seed_tenant(tenant_id, count, seed=seed, if_empty=if_empty,
                                   progress=bar.update, name=name)
        except ServiceError as exc:
            raise click.ClickException(exc.message) from exc
    if inserted:
        click.echo(f"inserted {inserted} appointments for {tenant_id}")
    else:
        click.echo(f"{tenant_id} already has appointments; nothing inserted")


def init_app(app) -> None:
    app.cli.add_command(seed_command)
