"""Bearer tokens bound to a tenant (or admin scope), signed with the app's SECRET_KEY.

A token is an itsdangerous-signed payload: tenant id, scope, issue and expiry times. Nothing is
stored per token; ``flask tenants revoke-tokens`` records a cut-off time on the tenant, and a
token issued before it is refused. Workers read the cut-off from the tenant record in the cache,
which the revocation rewrites (``services/tenants.py``).

Checking a request takes two steps, so that the stats path can read the tenant record in the
same cache round trip as its stats: ``read_claims`` (signature and expiry, no I/O), then
``admit`` (the tenant's cut-off).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from .services.exceptions import ServiceError
from .services.tenants import TenantInfo, get_tenant

SALT = "alignwork.api-token.v1"
TENANT, ADMIN = "tenant", "admin"
_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# What URLSafeSerializer produces: base64url payload (a leading "." if compressed), then the
# 27-character base64url HMAC-SHA1 signature.
_CANONICAL = re.compile(r"^\.?[A-Za-z0-9_-]{1,480}\.[A-Za-z0-9_-]{27}$")


class AuthError(Exception):
    """401 (who are you?) or 403 (not allowed); ``errors.py`` renders it."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Principal:
    scope: str
    tenant: TenantInfo | None  # None for admin tokens


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``12h``, ``30d`` → seconds."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 12h or 30d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


class VerifiedTokens:
    """Process-local, per-app memo of token strings whose signature already checked out, and
    their claims: a dashboard sends the same token every 30 seconds, and checking the HMAC and
    decoding it again is the largest cost of a cached request. Expiry and revocation are still
    checked on every request; forged tokens are never stored. Bounded, oldest dropped first."""

    def __init__(self, size: int = 10_000):
        self.size = size
        self._claims: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def remembered(self, token: str) -> dict | None:
        """The claims of a token whose signature already checked out here, or None."""
        return self._claims.get(token)

    def claims(self, token: str) -> dict:
        if not _CANONICAL.match(token):
            # itsdangerous would also accept other spellings of a valid token (its base64
            # decoder skips stray characters); refusing them keeps one memo entry per token.
            raise BadSignature("not a token this service issues")
        with self._lock:
            found = self._claims.get(token)
            if found is not None:
                self._claims.move_to_end(token)
        if found is not None:
            return found
        found = _serializer().loads(token)  # BadSignature for anything not signed by us
        if isinstance(found, dict):
            with self._lock:
                self._claims[token] = found
                while len(self._claims) > self.size:
                    self._claims.popitem(last=False)
        return found


def issue_token(tenant_id: str | None, expires_in: int, scope: str = TENANT) -> str:
    now = time.time()
    payload = {"sub": tenant_id, "scope": scope, "iat": math.floor(now * 1000) / 1000, "exp": int(now + expires_in)}
    return _serializer().dumps(payload)


@dataclass(frozen=True)
class Claims:
    """What a token says, its signature and expiry checked; not yet its revocation."""

    scope: str
    tenant_id: str | None
    issued_at: float
    expires_at: int = 0


def claims_of(found: dict) -> Claims:
    """Verified claims as ``Claims``, or ``AuthError`` for a foreign scope or a past expiry."""
    if not isinstance(found, dict) or found.get("scope") not in (TENANT, ADMIN):
        raise AuthError("Invalid token.")
    if not isinstance(found.get("exp"), int) or found["exp"] <= time.time():
        raise AuthError("Token expired.")
    issued = found.get("iat", 0)
    return Claims(found["scope"], found.get("sub"), issued if isinstance(issued, (int, float)) else 0,
                  found["exp"])


def read_claims(header: str | None) -> Claims:
    """The verified claims of an ``Authorization`` header, or ``AuthError`` (401)."""
    if not header:
        raise AuthError("Authentication required: send Authorization: Bearer <token>.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization must be 'Bearer <token>'.")
    try:
        claims = current_app.extensions["alignwork.verified_tokens"].claims(token.strip())
    except BadSignature:
        raise AuthError("Invalid token.") from None
    return claims_of(claims)


def admit(claims: Claims, tenant: TenantInfo) -> Principal:
    """The principal, if the tenant's tokens were not revoked since this one was issued."""
    if tenant.tokens_revoked_at is not None and claims.issued_at <= tenant.tokens_revoked_at:
        raise AuthError("Token revoked.")
    return Principal(TENANT, tenant)


def authenticate(header: str | None) -> Principal:
    """The principal behind an ``Authorization`` header, or ``AuthError`` (401)."""
    claims = read_claims(header)
    if claims.scope == ADMIN:
        return Principal(ADMIN, None)
    try:
        tenant = get_tenant(claims.tenant_id)
    except ServiceError:
        raise AuthError("Invalid token.") from None
    return admit(claims, tenant)


def init_app(app) -> None:
    app.extensions["alignwork.verified_tokens"] = VerifiedTokens()
