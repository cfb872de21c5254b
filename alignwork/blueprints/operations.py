"""Endpoints for operators: admin tokens only."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, fields
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import metrics
from ..schemas import NoQuerySchema
from ..services.stats import operators
from ..tenancy import require_admin
from . import ApiBlueprint

blp = ApiBlueprint(
    "operations", __name__, description="Operations: cache and request metrics (admin token).",
    admit=require_admin,
)


class CacheMetricsSchema(Schema):
    hits = fields.Integer()
    misses = fields.Integer()
    bypasses = fields.Integer()
    stale = fields.Integer()
    total_requests = fields.Integer()
    hit_rate = fields.Float(allow_none=True)
    computations = fields.Integer()
    precomputed = fields.Integer(metadata={"description": "entries computed before their zone's midnight, "
                                                          "for the next day"})
    precomputed_hits = fields.Integer(metadata={"description": "polls answered from such an entry"})
    db_statements = fields.Integer()
    avg_hit_time_ms = fields.Float(allow_none=True)
    avg_miss_time_ms = fields.Float(allow_none=True)
    cache_size = fields.Integer(allow_none=True)
    # The change listeners (services/changes/listener.py), over every process that shares the metrics.
    listener_running = fields.Integer()
    listener_connected = fields.Integer()
    listener_leading = fields.Integer(metadata={"description": "listeners applying changes (one, when elected)"})
    listener_leader_pid = fields.Integer(allow_none=True, metadata={"description": "the lease holder's process"})
    listener_lease_age_seconds = fields.Float(
        allow_none=True, metadata={"description": "since the leader last renewed its lease (replaced past 1 s)"})
    listener_takeovers = fields.Integer(metadata={"description": "times a listener took the lease"})
    listener_fenced_writes = fields.Integer(
        metadata={"description": "writes a listener left undone on finding its lease taken"})
    listener_changes_applied = fields.Integer(
        metadata={"description": "changes the listener wrote, that the app's own commits had not"})
    listener_avg_lag_ms = fields.Float(
        allow_none=True, metadata={"description": "from a change's statement to the listener writing it"})
    listener_last_applied_seconds_ago = fields.Float(allow_none=True)
    # Live dashboards (services/stats/stream_hub.py).
    streams_open = fields.Integer(metadata={"description": "mega-stats streams open now"})
    stream_events = fields.Integer(metadata={"description": "stats events sent after streams' first"})
    stream_avg_lag_ms = fields.Float(
        allow_none=True, metadata={"description": "from a change's statement to its event, where timed"})
    streams_refused = fields.Integer(metadata={"description": "streams refused at a cap (429/503)"})


@blp.route("/api/v1/appointments/cache-metrics")
class CacheMetrics(MethodView):
    @blp.arguments(NoQuerySchema(), location="query")
    @blp.response(200, CacheMetricsSchema)
    def get(self, _args):
        """Mega-stats cache totals since the server started, summed over every worker."""
        return metrics.cache_summary(operators.cache_size())


@blp.route("/metrics")
class PrometheusMetrics(MethodView):
    @blp.arguments(NoQuerySchema(), location="query")
    @blp.response(200, {"type": "string"}, content_type="text/plain")
    def get(self, _args):
        """Prometheus text format (send the admin token as a bearer token)."""
        return Response(generate_latest(metrics.registry()), content_type=CONTENT_TYPE_LATEST)
