"""``flask tenants``: create, rename, list, issue tokens, revoke tokens."""

from __future__ import annotations

import click

from ..auth import ADMIN, TENANT, issue_token, parse_duration
from ..models import DEFAULT_TIMEZONE
from ..services.changes import generations
from ..services.exceptions import ServiceError
from ..services.tenants import create_tenant, get_tenant, list_tenants, rename_tenant, revoke_tokens
from .refusals import MigratedGroup

tenants_cli = MigratedGroup("tenants", help="Tenants and their API tokens.")


@tenants_cli.command("create")
@click.argument("tenant_id")
@click.option("--name", help="Display name (defaults to the id).")
@click.option("--timezone", default=DEFAULT_TIMEZONE, show_default=True, help="IANA time zone.")
def create_command(tenant_id: str, name: str | None, timezone: str) -> None:
    """Create a tenant."""
    try:
        info = create_tenant(tenant_id, name, timezone)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"created tenant {info.id} ({info.name}, {info.timezone})")


@tenants_cli.command("rename")
@click.argument("tenant_id")
@click.argument("name")
def rename_command(tenant_id: str, name: str) -> None:
    """Give TENANT_ID the display NAME its dashboard shows (quote a name with spaces)."""
    try:
        info = rename_tenant(tenant_id, name)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc
    if generations.reaches_every_worker(info.id):
        click.echo(f"renamed {info.id} to {info.name}; dashboards show it from their next poll")
    else:
        click.echo(f"renamed {info.id} to {info.name}; the server's change listener applies it within "
                   "seconds of reaching its cache (this process cannot reach it)")


@tenants_cli.command("list")
def list_command() -> None:
    """List tenants: id, time zone, name."""
    for info in list_tenants():
        click.echo(f"{info.id}\t{info.timezone}\t{info.name}")


@tenants_cli.command("token")
@click.argument("tenant_id", required=False)
@click.option("--admin", is_flag=True, help="An admin token (operations endpoints) instead.")
@click.option("--expires", default="30d", show_default=True, help="Lifetime: 90s, 15m, 12h, 30d.")
def token_command(tenant_id: str | None, admin: bool, expires: str) -> None:
    """Print a bearer token for TENANT_ID (or --admin), as the last line of output."""
    try:
        seconds = parse_duration(expires)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from exc
    if admin == bool(tenant_id):
        raise click.UsageError("Give either a TENANT_ID or --admin.")
    if not admin:
        try:
            get_tenant(tenant_id)
        except ServiceError as exc:
            raise click.ClickException(exc.message) from exc
    click.echo(f"# {'admin' if admin else 'tenant ' + tenant_id} token, valid for {expires}", err=True)
    click.echo(issue_token(tenant_id, seconds, ADMIN if admin else TENANT))


@tenants_cli.command("revoke-tokens")
@click.argument("tenant_id")
def revoke_command(tenant_id: str) -> None:
    """Refuse every token issued so far for TENANT_ID."""
    try:
        revoke_tokens(tenant_id)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc
    if generations.reaches_every_worker(tenant_id):
        click.echo(f"revoked tokens of {tenant_id}; every worker refuses them from its next request")
    else:
        click.echo(f"revoked tokens of {tenant_id}; the server's change listener applies it within "
                   "seconds of reaching its cache (this process cannot reach it)")


def init_app(app) -> None:
    app.cli.add_command(tenants_cli)
