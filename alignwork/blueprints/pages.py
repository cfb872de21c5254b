"""The pages people look at: the clinic dashboard (``/``) and the operator page (``/ops``).

The HTML needs no token and holds no data: the page's script asks for the token (a field, or
``#token=…`` in the URL for wall screens), keeps it in sessionStorage and sends it to the API
with ``fetch``, polling mega-stats or cache-metrics like any other client. So these views only
render templates; everything they show comes through the public API.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for

from ..security import protect_page
from ..services.stats import stream_hub

bp = Blueprint("pages", __name__)
bp.after_request(protect_page)

# Seconds between polls: the dashboard's 30 s. A page may ask for less with ?poll=N (tests and
# demos), within the bounds the script enforces.
POLL_SECONDS = 30
_DOCS = "api-docs.openapi_swagger_ui"


@bp.context_processor
def _links() -> dict:
    """The docs link only when the docs are served (OPENAPI_SWAGGER_UI_PATH = None turns them
    off), so the pages never fail for want of it."""
    return {"docs_url": url_for(_DOCS) if _DOCS in current_app.view_functions else None}


@bp.get("/")
def dashboard():
    """Confirmed and pending appointments today, this week, this month and next month. Live
    (the mega-stats stream) where this server can hold streams; else the page only polls, and
    asks for no stream it would be refused."""
    return render_template("dashboard.html", poll_seconds=POLL_SECONDS, live=stream_hub.streams_possible())


@bp.get("/ops")
def operations():
    """Cache behaviour for operators (admin token): hit rate and its recent history."""
    return render_template("ops.html", poll_seconds=POLL_SECONDS)
