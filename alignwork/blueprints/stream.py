"""Live dashboards: mega-stats as server-sent events, and the tickets ``EventSource`` clients
authenticate with.

``GET /api/v1/appointments/mega-stats/stream`` sends the body ``GET …/mega-stats`` would, as an
``event: stats`` whose ``id`` is that answer's ETag, then one such event whenever the numbers
change (a write by anyone, the zone's midnight), a comment every ``STREAM_KEEPALIVE_SECONDS``,
and ends after ``STREAM_MAX_SECONDS`` (never past the token's expiry), when the tenant's tokens
are revoked, or when the worker stops. The waiting and the fan-out are
``services/stats/stream_hub.py``; this module parses, admits and writes the event format.

Like every API blueprint it admits callers before its views run (``_admit``): the stream takes
the token from ``Authorization`` or a single-use ``?ticket=``, never a token in the URL.
"""

from __future__ import annotations

import random
import time

from flask import current_app, request, stream_with_context
from flask.views import MethodView

from ..auth import TENANT, AuthError, Claims, admit, read_claims
from ..errors import error_response
from ..extensions import db
from ..periods import parse_timezone
from ..schemas import StreamQuerySchema, StreamTicketRequestSchema, StreamTicketSchema, TenantQuerySchema
from ..services import stream_tickets
from ..services.stats import stream_hub
from ..services.stats.stream_hub import Ending, Refused, Step, Subscription
from ..tenancy import admit_tenant, check_named, current_admission, named_tenant_id, read_record
from . import ApiBlueprint

_QUERY = StreamQuerySchema()
# Query parameters that would put a credential in a URL (logs, history, Referer): refused by name.
_TOKEN_PARAMETERS = {"token", "access_token", "accesstoken", "authorization", "auth", "bearer", "jwt",
                     "api_key", "apikey"}


def _stream_claims() -> Claims:
    """The stream's credential: a ticket (spent here, whatever follows) or the header's token."""
    named = _TOKEN_PARAMETERS.intersection(name.lower() for name in request.args)
    if named:
        raise AuthError("Tokens are not accepted in the URL: send Authorization: Bearer <token>, or get a "
                        "ticket from POST /api/v1/stream-tickets and pass ?ticket=.", 400)
    args = ApiBlueprint.ARGUMENTS_PARSER.parse(_QUERY, location="query")
    if not args.get("ticket"):
        return read_claims(request.headers.get("Authorization"))
    if "Authorization" in request.headers:
        raise AuthError("Send a ticket or an Authorization header, not both.", 400)
    try:
        ticket = stream_tickets.redeem(args["ticket"])
    except stream_tickets.TicketsUnavailable:
        raise _Unavailable() from None
    if ticket is None:
        raise AuthError("Invalid, spent or expired ticket: ask POST /api/v1/stream-tickets for another.")
    if ticket.expires_at <= time.time():
        raise AuthError("Token expired.")
    return Claims(TENANT, ticket.tenant_id, ticket.issued_at, ticket.expires_at)


class _Unavailable(Exception):
    """The ticket store (the shared cache) cannot be used: 503, try again soon."""


def _read_stream(claims: Claims):
    args = ApiBlueprint.ARGUMENTS_PARSER.parse(_QUERY, location="query")
    check_named(claims, args.get("tenantId"))
    tenant, _ = read_record(claims)
    return tenant, claims


def _read_ticket_request(claims: Claims):
    check_named(claims, named_tenant_id())
    tenant, _ = read_record(claims)
    return tenant, claims


def _admit():
    if request.method == "OPTIONS":
        return None
    if request.endpoint == _STREAM_ENDPOINT:
        try:
            return admit_tenant(_read_stream, _stream_claims())
        except _Unavailable:
            return error_response(503, "Stream tickets cannot be checked right now; try again, or poll.",
                                  headers={"Retry-After": "5"})
    if request.endpoint == _TICKETS_ENDPOINT:
        return admit_tenant(_read_ticket_request)
    return admit_tenant()


blp = ApiBlueprint("stream", __name__, url_prefix="/api/v1", admit=_admit,
                   description="Live dashboards: mega-stats pushed as server-sent events.")
blp.record_once(lambda state: stream_hub.init_app(state.app))

_HEADERS = {
    "Retry-After": {"description": "On 429 and 503: seconds before trying a stream again (poll meanwhile).",
                    "schema": {"type": "integer"}},
}


def _bare_etag(value: str | None) -> str | None:
    """An event id or ETag without ``W/`` and quotes: the client may send either spelling."""
    if not value:
        return None
    value = value.strip()
    return (value[2:] if value.startswith("W/") else value).strip('"') or None


def _event(state) -> str:
    """One ``stats`` event: ``data`` is the body byte for byte (its final newline included, which
    takes a ``data:`` line of its own, as the event-stream format joins lines)."""
    data = "".join(f"data: {line}\n" for line in state.body.decode().split("\n"))
    return f'event: stats\nid: W/"{state.etag}"\n{data}\n'


def _events(subscription: Subscription, claims: Claims, first: Step, retry_ms: int):
    """The response body; the subscription is closed however it ends (the client going away
    included: the server closes the generator)."""
    try:
        yield f"retry: {retry_ms}\n\n"  # sent at once: the client knows the stream is open
        if first.news:
            yield _event(first.state)
        for step in subscription.steps():
            if step.ending is not None:
                # A stopping worker's clients come back at once (spread over a second) to the
                # workers still serving; the others after the usual delay.
                soon = random.randrange(250, 1000) if step.ending is Ending.SHUTDOWN else retry_ms
                yield f"retry: {soon}\n: end {step.ending.value}\n\n"
                return
            if step.state is None:
                yield ": keep-alive\n\n"
                continue
            try:
                admit(claims, step.state.tenant)
            except AuthError:
                yield ": end revoked\n\n"
                return
            if step.news:
                yield _event(step.state)
                subscription.delivered(step)
    finally:
        subscription.close()


@blp.route("/appointments/mega-stats/stream")
class MegaStatsStream(MethodView):
    @blp.arguments(_QUERY, location="query")
    @blp.response(200, {"type": "string"}, content_type="text/event-stream", headers=_HEADERS)
    @blp.alt_response(429, description="This tenant has as many streams open as allowed; poll.", headers=_HEADERS)
    @blp.alt_response(503, description="This server cannot hold (more) streams; poll.", headers=_HEADERS)
    def get(self, args):
        """Mega-stats pushed as server-sent events: an ``event: stats`` whose ``id`` is the ETag and
        whose ``data`` is the mega-stats body, at once and after every change. Send the
        ``Last-Event-ID`` header (or ``lastEventId``) to skip the first event if it is not new."""
        config = current_app.config
        db.session.remove()  # nothing of the database is held while the stream is open
        if not stream_hub.streams_possible():
            return error_response(503, "This server's worker class cannot hold streams; poll mega-stats.",
                                  headers={"Retry-After": str(int(config["STREAM_MAX_SECONDS"]))})
        admission = current_admission()
        claims, tenant = admission.read, admission.tenant
        zone = args.get("tz") or parse_timezone(tenant.timezone)
        last = _bare_etag(request.headers.get("Last-Event-ID") or args.get("lastEventId"))
        # Up to a tenth shorter: streams opened together (after a deploy) do not all end together.
        lifetime = config["STREAM_MAX_SECONDS"] * random.uniform(0.9, 1.0)
        ends_at = min(time.time() + lifetime, claims.expires_at)
        try:
            subscription = stream_hub.hub().open(tenant.id, zone, ends_at, last)
        except Refused as refused:
            return error_response(refused.status, refused.message, headers={"Retry-After": str(refused.retry_after)})
        try:
            first = subscription.first()
        except Exception:
            subscription.close()
            raise
        if first.ending is not None:
            subscription.close()
            return error_response(401, "Invalid token.")
        retry = int(config["STREAM_RETRY_SECONDS"] * 1000)
        body = _events(subscription, claims, first, retry + random.randrange(retry + 1))
        return current_app.response_class(
            stream_with_context(body), mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@blp.route("/stream-tickets")
class StreamTickets(MethodView):
    @blp.arguments(TenantQuerySchema(), location="query")
    @blp.arguments(StreamTicketRequestSchema())
    @blp.response(201, StreamTicketSchema)
    @blp.alt_response(503, description="The shared cache that holds tickets is unreachable.", headers=_HEADERS)
    def post(self, _query, _body):
        """A single-use ticket for one stream (``?ticket=``), for ``EventSource`` clients that cannot
        send ``Authorization``. Valid at most 60 s and never past the token that asked for it; it
        carries that token's tenant, issue and expiry times (a revocation refuses it)."""
        claims = current_admission().read
        try:
            ticket, seconds = stream_tickets.issue(claims.tenant_id, claims.issued_at, claims.expires_at)
        except stream_tickets.TicketsUnavailable:
            return error_response(503, "Tickets cannot be issued right now; use the Authorization header, "
                                       "or poll.", headers={"Retry-After": "5"})
        return {"ticket": ticket, "expiresIn": seconds}


_STREAM_ENDPOINT = f"{blp.name}.{MegaStatsStream.__name__}"
_TICKETS_ENDPOINT = f"{blp.name}.{StreamTickets.__name__}"
