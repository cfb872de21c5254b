"""A page on another origin calls the API with a bearer token and reads X-Cache (CORS in a real browser)."""

from __future__ import annotations

import pytest
from werkzeug.wrappers import Response

from tests.browser.conftest import STATS, api
from tests.conftest import Builder, token_for

pytestmark = pytest.mark.slow


@pytest.mark.usefixtures("afternoon")  # a MISS, then a HIT: both on one local date
def test_a_page_on_another_origin_reads_mega_stats_and_x_cache(make_app, serve, context):
    other = serve(Response("<!doctype html><title>clinic front-end</title><p>front-end</p>", mimetype="text/html"))
    port = other.url.rsplit(":", 1)[1]
    allowed, unlisted = f"http://127.0.0.1:{port}", f"http://localhost:{port}"  # same server, two origins
    app = make_app(CORS_ORIGINS=[allowed])
    Builder(app).tenant("acme")
    server = serve(app)
    token = token_for(app, "acme")
    call = """async ([url, token]) => {
        try {
            const r = await fetch(url, {headers: {Authorization: "Bearer " + token}});
            return {status: r.status, xCache: r.headers.get("X-Cache"), body: await r.json()};
        } catch (e) { return {error: String(e)}; }
    }"""
    page = context().new_page()

    page.goto(allowed + "/")
    first = page.evaluate(call, [server.url + STATS, token])
    second = page.evaluate(call, [server.url + STATS, token])
    assert (first["status"], first["xCache"]) == (200, "MISS")
    assert (second["status"], second["xCache"]) == (200, "HIT")
    assert second["body"] == api(server.url, STATS, token)[2]
    refused = page.evaluate(call, [server.url + STATS, "not.a.token"])
    assert refused["status"] == 401 and "token" in refused["body"]["message"].lower()

    page.goto(unlisted + "/")
    blocked = page.evaluate(call, [server.url + STATS, token])
    assert "Failed to fetch" in blocked.get("error", ""), blocked
