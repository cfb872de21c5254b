"""The dashboard (/) and the operator page (/ops) as HTML: no token needed, nothing inline,
nothing from another origin, and the elements the browser tests and the script rely on."""

from __future__ import annotations

import pytest

from alignwork.blueprints.operations import CacheMetricsSchema
from alignwork.security import PAGE_POLICY
from tests.conftest import parse_html as parse

PAGES = ["/", "/ops"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_no_token_and_carry_a_strict_policy(client, path):
    response = client.get(path, auth=False)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == PAGE_POLICY
    directives = dict(d.split(" ", 1) for d in PAGE_POLICY.split("; "))
    assert directives["default-src"] == directives["script-src"] == directives["connect-src"] == "'self'"
    assert "unsafe" not in PAGE_POLICY
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_only_their_own_files(client, path):
    tags = parse(client.get(path, auth=False))
    assert not tags.inline_script and not tags.inline_style
    scripts = [attrs["src"] for attrs in tags.find("script")]
    styles = [attrs["href"] for attrs in tags.find("link")]
    assert scripts and styles
    for url in scripts + styles:
        assert url.startswith("/static/"), url
        asset = client.get(url, auth=False)
        assert asset.status_code == 200, url
        assert asset.mimetype in ("text/javascript", "text/css", "image/svg+xml"), url


def test_the_dashboard_has_a_cell_for_every_period_and_status(client):
    tags = parse(client.get("/", auth=False))
    cells = {(attrs["data-period"], attrs["data-status"]) for attrs in tags.find() if "data-period" in attrs}
    assert cells == {(p, s) for p in ("today", "week", "month", "nextMonth") for s in ("confirmed", "pending")}
    body = tags.find("body")[0]
    assert body["data-endpoint"] == "/api/v1/appointments/mega-stats"
    assert body["data-poll-seconds"] == "30"
    assert tags.find("input", id="token-input", type="password")


def test_the_dashboard_has_room_for_the_clinic_and_what_its_numbers_are_for(client):
    """The script fills these from the tenant endpoint and mega-stats' headers; until it does,
    the page claims no zone and no date."""
    tags = parse(client.get("/", auth=False))
    assert tags.find("body")[0]["data-tenant-endpoint"] == "/api/v1/tenant"
    fields = {attrs["data-field"]: (tag, attrs) for tag, attrs in tags.tags if "data-field" in attrs}
    assert fields["clinic"][0] == "h1"
    assert fields["local-date"][0] == "time" and "datetime" not in fields["local-date"][1]
    assert "hidden" in fields["scope"][1] and "zone" in fields


def test_the_operator_page_shows_every_cache_metric(client):
    tags = parse(client.get("/ops", auth=False))
    metrics = {attrs["data-metric"] for attrs in tags.find() if "data-metric" in attrs}
    # Every number cache-metrics answers with (the total is the sum of the outcomes shown).
    assert metrics == set(CacheMetricsSchema().fields) - {"total_requests"}
    assert tags.find("body")[0]["data-endpoint"] == "/api/v1/appointments/cache-metrics"
    assert tags.find("svg", id="hit-rate-chart")


def test_the_api_still_answers_json_for_unknown_paths(client):
    response = client.get("/no-such-page", auth=False)
    assert response.status_code == 404 and response.get_json()["code"] == 404
    assert "Content-Security-Policy" not in client.get("/healthz").headers


def test_pages_link_the_docs_only_when_they_are_served(make_app):
    with_docs = parse(make_app().test_client().get("/", auth=False))
    assert with_docs.find("a", href="/api/docs")
    without = make_app(OPENAPI_SWAGGER_UI_PATH=None).test_client().get("/", auth=False)
    assert without.status_code == 200
    assert not parse(without).find("a", href="/api/docs")
