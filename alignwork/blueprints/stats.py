"""Mega-stats, the endpoint every dashboard polls.

The blueprint admits a poll before its view runs, like every API blueprint, but reads the tenant
record that finishes the check (revocation) together with the poll's stats, in one cache read
(``_read_poll``): a poll answered from the cache runs no SQL and makes one round trip. Polls are
conditional: the weak ``ETag`` names the exact body, and ``If-None-Match`` with it is answered
``304`` without a body. Most HITs and 304s never reach this view: ``fast_path.py`` answers them.

Every answer, 304 included, names the zone and the local date its numbers are for in headers
(``X-Stats-Zone``, ``X-Stats-Local-Date``): the body stays the counts existing clients parse, and
the date is the one of the entry served, which the client could not work out for itself at
midnight.
"""

from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView

from ..auth import Claims
from ..schemas import MegaStatsSchema, StatsQuerySchema
from ..services.exceptions import NotFound
from ..services.stats import answer as stats_answer
from ..services.tenants import TenantInfo
from ..stats_headers import JSON, answer_headers
from ..tenancy import admit_tenant, check_named, current_admission
from . import ApiBlueprint

# One instance for the view's declaration and the admission: the parser remembers valid query
# strings per schema instance, so the second parse of a poll is a dictionary look-up.
_QUERY = StatsQuerySchema()


def remembered_query(query_string: bytes) -> dict | None:
    """The arguments of a poll's query string already accepted by ``StatsQuerySchema``."""
    return ApiBlueprint.ARGUMENTS_PARSER.remembered(_QUERY, query_string)


def _read_poll(claims: Claims) -> tuple[TenantInfo | None, stats_answer.Snapshot | None]:
    """The admission's read: the query (400 if invalid), the named tenant (403 if another),
    then the tenant record with the poll's stats, in one cache round trip."""
    args = ApiBlueprint.ARGUMENTS_PARSER.parse(_QUERY, location="query")
    check_named(claims, args.get("tenantId"))
    try:
        snapshot = stats_answer.read(claims.tenant_id, args.get("tz"))
    except NotFound:
        return None, None
    return snapshot.tenant, snapshot


def _admit() -> None:
    """Polls read the record with their stats; any other view of the blueprint, the record."""
    admit_tenant(_read_poll if request.endpoint == _POLL_ENDPOINT else None)


blp = ApiBlueprint(
    "stats", __name__, url_prefix="/api/v1/appointments", admit=_admit,
    description="The dashboard's appointment counts, served from the cache.",
)

_HEADERS = {
    "X-Cache": {"description": "HIT, MISS, BYPASS (cache unavailable) or STALE (database unavailable)",
                "schema": {"type": "string"}},
    "ETag": {"description": "Weak tag of the body; send it back in If-None-Match.", "schema": {"type": "string"}},
    "Age": {"description": "Seconds since a STALE body was computed.", "schema": {"type": "integer"}},
    "X-Stats-Zone": {"description": "The IANA time zone the numbers are counted in: tz, else the tenant's.",
                     "schema": {"type": "string", "example": "America/Recife"}},
    "X-Stats-Local-Date": {"description": "The date in that zone the numbers are for: today's, and the "
                                          "week and months around it.",
                           "schema": {"type": "string", "format": "date", "example": "2026-12-01"}},
}


@blp.route("/mega-stats")
class MegaStats(MethodView):
    @blp.arguments(_QUERY, location="query")
    @blp.response(200, MegaStatsSchema, headers=_HEADERS)
    @blp.alt_response(304, description="Not modified: the body named by If-None-Match is current.",
                      headers=_HEADERS)
    def get(self, args):
        """Confirmed and pending counts for today, this week (Sunday to Saturday), this month and
        next month, in ``tz`` (default: the tenant's time zone)."""
        snapshot = current_admission().read  # read with the tenant record, when admitted
        answer = stats_answer.answer(snapshot, request.if_none_match)
        age = answer.age if answer.outcome is stats_answer.Outcome.STALE else None
        headers = answer_headers(answer.outcome.value, answer.entry.etag, snapshot.zone.key, snapshot.day, age)
        if answer.not_modified:
            return current_app.response_class(status=304, headers=headers)
        # The body was encoded once, when computed: sent as stored.
        return current_app.response_class(answer.entry.body, mimetype=JSON, headers=headers)


_POLL_ENDPOINT = f"{blp.name}.{MegaStats.__name__}"
POLL_PATH = blp.url_prefix + "/mega-stats"
