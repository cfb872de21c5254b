"""/api/docs renders every operation with every request to another host cut off, under the
pages' Content-Security-Policy, and asks for nothing the app does not have (its icon included)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import METRICS, STATS, screenshot

pytestmark = pytest.mark.slow


def test_the_docs_render_every_operation_with_the_network_cut_off(make_app, serve, context):
    server = serve(make_app())
    browser_context = context()
    elsewhere: list[str] = []

    def only_the_app(route):
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    browser_context.route("**/*", only_the_app)
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    refused: list[str] = []  # a /favicon.ico 404, say
    page.on("response", lambda response: refused.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    console_errors: list[str] = []  # a Content-Security-Policy violation would be one
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)

    page.goto(server.url + "/api/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    assert {STATS, METRICS, "/api/v1/appointments", "/api/v1/patients"} <= {p.replace("\u200b", "") for p in paths}
    assert page.locator(".opblock").count() >= 8
    print("docs screenshot:", screenshot(page, "docs"))
    assert elsewhere == []
    assert requested and all(url.startswith(server.url + "/") for url in requested), requested
    assert errors == []
    page.wait_for_load_state("networkidle")
    assert server.url + "/static/favicon.svg" in requested
    assert refused == [] and console_errors == []
