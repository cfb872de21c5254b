"""The operator page at /ops: cache-metrics as the API gives them, and the hit-rate chart."""

from __future__ import annotations

import time
from decimal import ROUND_HALF_UP, Decimal

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
    assert text == as_percent(answered["hit_rate"])
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


def as_percent(rate: float) -> str:
    """The rate as the page shows it, rounded the way JavaScript's `toFixed(1)` rounds.

    `toFixed` rounds the double's exact value and takes the larger of two equally near
    results; Python's `:.1f` takes the even one. They differ on a tie: a hit rate of 0.4725
    is exactly 47.25 once multiplied by 100, which the page shows as "47.3 %" and `:.1f`
    would give as "47.2 %". `Decimal(float)` is exact, so half-up on it is `toFixed`.
    """
    return f"{Decimal(rate * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} %"


def test_as_percent_rounds_as_chromium_does(context):
    rates = [0.4725, 0.4724, 0.0125, 0.9995, 1.0, 0.0, 0.3333]  # 0.4725 and 0.0125 are ties
    page = context().new_page()
    shown = page.evaluate("rates => rates.map(r => (r * 100).toFixed(1) + ' %')", rates)
    assert shown == [as_percent(rate) for rate in rates]
    assert as_percent(0.4725) == "47.3 %" != f"{0.4725 * 100:.1f} %"


def test_the_operator_page_refuses_a_clinic_token(clinic, serve, context):
    server = serve(clinic)
    page = context().new_page()
    page.goto(f"{server.url}/ops?poll=1#token={token_for(clinic, 'acme')}")
    wait_for(page, "document.body.dataset.state === 'needs-token'", seconds=10)
    assert "admin token" in page.locator("#token-reason").inner_text()
