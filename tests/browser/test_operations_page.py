"""The operator page at /ops: cache-metrics as the API gives them, and the hit-rate chart."""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import METRICS, STATS, api, screenshot, wait_for
from tests.conftest import token_for

pytestmark = pytest.mark.slow


def test_the_operator_page_shows_the_hit_rate_and_charts_it(clinic, serve, context):
    server = serve(clinic)
    token = token_for(clinic, "acme")
    admin = token_for(clinic, None, scope="admin")
    for _ in range(4):
        api(server.url, STATS, token)
    page = context().new_page()

    page.goto(f"{server.url}/ops?poll=1#token={admin}")
    deadline = time.monotonic() + 10
    while True:
        shown = page.get_attribute("[data-metric='hit_rate']", "data-value")
        answered = api(server.url, METRICS, admin)[2]
        if shown and float(shown) == answered["hit_rate"]:
            break
        assert time.monotonic() < deadline, (shown, answered)
        page.wait_for_timeout(100)
    text = page.locator("[data-metric='hit_rate']").inner_text()
    assert text == f"{answered['hit_rate'] * 100:.1f} %"
    for name in ("hits", "misses", "bypasses", "computations"):
        assert page.get_attribute(f"[data-metric='{name}']", "data-value") == str(answered[name])

    for _ in range(3):  # lookups between polls become points on the chart
        for _ in range(3):
            api(server.url, STATS, token)
        page.wait_for_timeout(1200)
    wait_for(page, "document.querySelectorAll('#hit-rate-chart .dots circle').length >= 2", seconds=10)
    points = page.get_attribute("#hit-rate-chart .line", "points").split()
    assert len(points) >= 2
    print("operator page screenshot:", screenshot(page, "ops"))


def test_the_operator_page_refuses_a_clinic_token(clinic, serve, context):
    server = serve(clinic)
    page = context().new_page()
    page.goto(f"{server.url}/ops?poll=1#token={token_for(clinic, 'acme')}")
    wait_for(page, "document.body.dataset.state === 'needs-token'", seconds=10)
    assert "admin token" in page.locator("#token-reason").inner_text()
