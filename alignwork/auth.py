"""Bearer tokens bound to a tenant (or admin scope), signed with the app's SECRET_KEY.

A token is an itsdangerous-signed payload: tenant id, scope, issue and expiry times. Nothing is
stored per token; ``flask tenants revoke-tokens`` records a cut-off time on the tenant, and a
token issued before it is refused. Workers learn the cut-off through the tenant memo, so a
revocation reaches every worker within ``TENANT_MEMO_SECONDS``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import click
from flask import current_app
from flask.cli import with_appcontext
from itsdangerous import BadSignature, URLSafeSerializer

from .services.exceptions import ServiceError
from .services.tenants import get_tenant, revoke_tokens, tenants_cli

SALT = "alignwork.api-token.v1"
TENANT, ADMIN = "tenant", "admin"
_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class AuthError(Exception):
    """401 (who are you?) or 403 (not allowed); ``errors.py`` renders it."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Principal:
    scope: str
    tenant_id: str | None


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``12h``, ``30d`` → seconds."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 12h or 30d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def issue_token(tenant_id: str | None, expires_in: int, scope: str = TENANT) -> str:
    now = time.time()
    payload = {"sub": tenant_id, "scope": scope, "iat": round(now, 3), "exp": int(now + expires_in)}
    return _serializer().dumps(payload)


def authenticate(header: str | None) -> Principal:
    """The principal behind an ``Authorization`` header, or ``AuthError`` (401)."""
    if not header:
        raise AuthError("Authentication required: send Authorization: Bearer <token>.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization must be 'Bearer <token>'.")
    try:
        claims = _serializer().loads(token.strip())
    except BadSignature:
        raise AuthError("Invalid token.") from None
    if not isinstance(claims, dict) or claims.get("scope") not in (TENANT, ADMIN):
        raise AuthError("Invalid token.")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
        raise AuthError("Token expired.")
    if claims["scope"] == ADMIN:
        return Principal(ADMIN, None)
    try:
        tenant = get_tenant(claims.get("sub"))
    except ServiceError:
        raise AuthError("Invalid token.") from None
    if tenant.tokens_revoked_at is not None and claims.get("iat", 0) <= tenant.tokens_revoked_at:
        raise AuthError("Token revoked.")
    return Principal(TENANT, tenant.id)


# -- commands ---------------------------------------------------------------------------------


@click.command("token")
@click.argument("tenant_id", required=False)
@click.option("--admin", is_flag=True, help="An admin token (operations endpoints) instead.")
@click.option("--expires", default="30d", show_default=True, help="Lifetime: 90s, 15m, 12h, 30d.")
@with_appcontext
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


@click.command("revoke-tokens")
@click.argument("tenant_id")
@with_appcontext
def revoke_command(tenant_id: str) -> None:
    """Invalidate every token issued so far for TENANT_ID (all workers, within the memo TTL)."""
    try:
        revoke_tokens(tenant_id)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc
    seconds = current_app.config["TENANT_MEMO_SECONDS"]
    click.echo(f"revoked tokens of {tenant_id}; every worker refuses them within {seconds} s")


def init_app(app) -> None:
    tenants_cli.add_command(token_command)
    tenants_cli.add_command(revoke_command)
