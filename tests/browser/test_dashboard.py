"""The clinic dashboard at /: the API's numbers, a write within one poll, conditional requests, tokens, phones."""

from __future__ import annotations

import time

import pytest

from alignwork.services import tenants
from tests.browser.conftest import (
    PHONE,
    STATS,
    api,
    book,
    changed_at,
    page_counts,
    screenshot,
    wait_for,
    wait_until_page_shows_the_api,
)
from tests.conftest import token_for

pytestmark = pytest.mark.slow


def test_the_dashboard_shows_the_apis_numbers_and_a_write_within_one_poll(clinic, serve, context):
    server = serve(clinic)
    token = token_for(clinic, "acme")
    poll = 2
    page = context().new_page()
    requests: list = []
    page.on("request", lambda request: requests.append(request))
    console_errors: list[str] = []  # a Content-Security-Policy violation would be one
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)

    page.goto(f"{server.url}/?poll={poll}#token={token}")
    before = wait_until_page_shows_the_api(page, server.url, token, seconds=10)
    assert "token" not in page.url and token not in page.url
    assert page.evaluate("sessionStorage.getItem('alignwork.token')") == token
    assert page.get_attribute("body", "data-state") == "ok"
    assert page.locator('[data-field="cache"]').inner_text().split(" ")[0] in ("cache", "database")
    first_change = changed_at(page)
    print("dashboard screenshot:", screenshot(page, "dashboard"))

    book(server.url, token)
    written = time.monotonic()
    after = wait_until_page_shows_the_api(page, server.url, token, seconds=poll + 3)
    assert time.monotonic() - written <= poll + 3
    assert after != before
    assert changed_at(page) > first_change
    total = lambda counts: counts["month"]["confirmed"] + counts["nextMonth"]["confirmed"]  # noqa: E731
    assert total(after) == total(before) + 1

    api_calls = [r for r in requests if STATS in r.url]
    assert len(api_calls) >= 2
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in api_calls)
    assert not [r.url for r in requests if token in r.url]  # never in a URL, the page's own included
    assert console_errors == []


class StatsStatuses:
    """Records the status of every mega-stats answer of the real app on the real server."""

    def __init__(self, app):
        self.app = app
        self.answered: list[int] = []

    def __call__(self, environ, start_response):
        def recording_start_response(status, headers, *args):
            if environ.get("PATH_INFO") == STATS:
                self.answered.append(int(status.split()[0]))
            return start_response(status, headers, *args)

        return self.app(environ, recording_start_response)


def test_the_dashboard_revalidates_with_the_etag_and_keeps_its_numbers_on_304(clinic, serve, context):
    conditional = StatsStatuses(clinic)
    server = serve(conditional)
    token = token_for(clinic, "acme")
    page = context().new_page()
    sent: list[str | None] = []
    page.on("request", lambda r: sent.append(r.headers.get("if-none-match")) if STATS in r.url else None)

    page.goto(f"{server.url}/?poll=1#token={token}")
    shown = wait_until_page_shows_the_api(page, server.url, token, seconds=10)
    first_change = changed_at(page)
    wait_for(page, "document.querySelector('[data-field=\"cache\"]').textContent.includes('unchanged')", seconds=10)
    assert 304 in conditional.answered
    assert sent[0] is None and any(tag and tag.startswith('W/"') for tag in sent[1:])
    assert page_counts(page) == shown  # a 304 keeps the numbers
    assert changed_at(page) == first_change  # and they did not change
    assert page.get_attribute("body", "data-state") == "ok"

    book(server.url, token)
    after = wait_until_page_shows_the_api(page, server.url, token, seconds=4)
    assert after != shown


def test_the_dashboard_asks_for_a_token_and_explains_a_refused_one(clinic, serve, context):
    server = serve(clinic)
    token = token_for(clinic, "acme")
    page = context().new_page()

    page.goto(f"{server.url}/?poll=1")
    page.wait_for_selector("#token-form:not([hidden])")
    assert page.get_attribute("body", "data-state") == "needs-token"
    assert "Paste a token" in page.locator("#token-reason").inner_text()

    page.fill("#token-input", "not.a.valid-token")
    page.click("#token-form button[type=submit]")
    wait_for(page, "document.body.dataset.state === 'needs-token' && "
                   "document.querySelector('#token-reason').textContent.includes('valid token')")
    refused = page.locator("#token-reason").inner_text()
    assert api(server.url, STATS, "not.a.valid-token")[2]["message"] in refused

    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")
    wait_until_page_shows_the_api(page, server.url, token, seconds=10)
    assert page.evaluate("sessionStorage.getItem('alignwork.token')") == token

    with clinic.app_context():
        tenants.revoke_tokens("acme")
    wait_for(page, "document.body.dataset.state === 'needs-token'", seconds=5)
    message = api(server.url, STATS, token)[2]["message"]
    assert message in page.locator("#token-reason").inner_text()
    assert page.evaluate("sessionStorage.getItem('alignwork.token')") is None
    assert page.locator("[data-period='today'][data-status='confirmed']").get_attribute("data-value") is not None
    print("refused token screenshot:", screenshot(page, "dashboard-token-refused"))


def test_the_dashboard_fits_a_phone(clinic, serve, context):
    server = serve(clinic)
    token = token_for(clinic, "acme")
    page = context(**PHONE).new_page()
    page.goto(f"{server.url}/#token={token}")
    wait_until_page_shows_the_api(page, server.url, token, seconds=10)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    size = page.eval_on_selector("[data-period='today'][data-status='confirmed']",
                                 "cell => parseFloat(getComputedStyle(cell).fontSize)")
    assert size >= 24
    print("phone screenshot:", screenshot(page, "dashboard-phone"))
