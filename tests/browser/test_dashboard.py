"""The clinic dashboard at /: the API's numbers, a write within one poll, conditional requests, tokens, phones."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

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
from tests.conftest import SAO_JOSE_NAME, Builder, token_for

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


# -- what the numbers are for: the clinic, the zone and the local date ---------------------

TENANT = "/api/v1/tenant"


@pytest.fixture
def sao_jose(clinic):
    """The clinic app with a tenant whose name is not ASCII."""
    Builder(clinic).sao_jose()
    return clinic


def page_scope(page) -> dict:
    """The clinic the page names, and whether and which zone and date it says its numbers are for."""
    return page.evaluate("""() => {
        const scope = document.querySelector('[data-field="scope"]');
        const date = document.querySelector('[data-field="local-date"]');
        return {clinic: document.querySelector('[data-field="clinic"]').textContent.trim(),
                shown: !scope.hidden, zone: document.querySelector('[data-field="zone"]').textContent,
                date: date.getAttribute('datetime'), dateText: date.textContent};
    }""")


def wait_until_page_names_what_the_api_does(page, base, token, path, seconds: float) -> tuple[str, str]:
    """Until the page's zone and date equal the API's, read just after them (so a poll that
    crosses midnight is waited for, not failed); the API's zone and date."""
    deadline = time.monotonic() + seconds
    while True:
        scope = page_scope(page)
        status, headers, _ = api(base, path, token)
        assert status == 200
        answered = (headers["X-Stats-Zone"], headers["X-Stats-Local-Date"])
        if scope["shown"] and (scope["zone"], scope["date"]) == answered:
            return answered
        if time.monotonic() > deadline:
            raise AssertionError(f"page says {scope}, the API says {answered}")
        page.wait_for_timeout(100)


def english_date(day: date) -> str:
    """A date as the dashboard writes it, in its own language (``<html lang="en">``)."""
    weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"]
    return f"{weekdays[day.weekday()]}, {months[day.month - 1]} {day.day}, {day.year}"


def shown_time(page, name: str) -> tuple[datetime, str]:
    """The instant a freshness field names, and the text the reader sees for it (read together:
    the next poll may replace them)."""
    stamp, text = page.eval_on_selector(f'[data-field="{name}"] time',
                                        "time => [time.dateTime, time.textContent]")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")), text


@pytest.mark.parametrize("tz,browser_zone", [
    (None, "Asia/Tokyo"),                      # the clinic's zone, Recife; the reader in Tokyo
    ("Pacific/Kiritimati", "America/Recife"),  # UTC+14 asked for; the reader in the clinic's zone
])
def test_the_dashboard_names_the_clinic_and_the_zone_and_date_of_its_numbers(sao_jose, serve, context, tz,
                                                                             browser_zone):
    server = serve(sao_jose)
    token = token_for(sao_jose, "sao-jose")
    query = f"?tz={tz}" if tz else ""
    page = context(timezone_id=browser_zone, locale="en-GB").new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{server.url}/{query}{'&' if query else '?'}poll=1#token={token}")
    wait_until_page_shows_the_api(page, server.url, token, seconds=10)
    zone, day = wait_until_page_names_what_the_api_does(page, server.url, token, STATS + query, seconds=10)

    assert zone == (tz or "America/Recife")
    # The API's date is the date in that zone, read just now (or a moment ago, before a midnight).
    after = datetime.now(ZoneInfo(zone))
    assert day in {after.date().isoformat(), (after - timedelta(seconds=10)).date().isoformat()}
    shown = page_scope(page)  # its date and the words for it in one read, whatever a poll brings
    assert shown["dateText"] == english_date(date.fromisoformat(shown["date"]))  # the page's language, not en-GB

    wait_for(page, "document.querySelector('[data-field=\"clinic\"]').textContent !== 'Appointments'")
    assert page_scope(page)["clinic"] == api(server.url, TENANT, token)[2]["name"] == SAO_JOSE_NAME
    assert SAO_JOSE_NAME in page.title()

    # Times are shown in the zone of the numbers, not the browser's.
    for name in ("checked", "changed"):
        instant, text = shown_time(page, name)
        assert instant.astimezone(ZoneInfo(zone)).strftime("%H:%M:%S") in text, (name, text)
        assert instant.astimezone(ZoneInfo(browser_zone)).strftime("%H:%M:%S") not in text, (name, text)
    assert console_errors == []
    print("dashboard heading screenshot:", screenshot(page, f"dashboard-heading-{zone.replace('/', '-')}"))


@pytest.fixture
def open_dashboard(serve, context):
    """``open_dashboard(wsgi, token, query)``: serve ``wsgi`` (the app, or a wrapper that watches
    it) and open its dashboard in a new page with ``token`` in the fragment; the server and page."""

    def open_(wsgi, token: str, query: str = "?poll=1"):
        server = serve(wsgi)
        page = context().new_page()
        page.goto(f"{server.url}/{query}#token={token}")
        return server, page

    return open_


def test_an_unknown_zone_is_explained_in_the_apis_words_and_not_asked_again(sao_jose, open_dashboard):
    statuses = StatsStatuses(sao_jose)
    token = token_for(sao_jose, "sao-jose")
    server, page = open_dashboard(statuses, token, "?tz=Mars/Olympus&poll=1")
    wait_for(page, "document.body.dataset.state === 'refused'", seconds=10)
    said = api(server.url, STATS + "?tz=Mars/Olympus", token)[2]["errors"]["tz"][0]
    assert said.startswith("Unknown time zone 'Mars/Olympus'")
    banner = page.locator("#message").inner_text()
    assert said in banner and "400" in banner
    assert "last numbers" not in banner and "Showing the numbers" not in banner
    assert "No numbers to show" in banner
    assert page_counts(page) == {}  # no numbers claimed
    assert page.locator("[data-period='today'][data-status='confirmed']").inner_text() == "–"
    assert page_scope(page)["shown"] is False  # nor a zone or date
    wait_for(page, f"document.querySelector('[data-field=\"clinic\"]').textContent === {SAO_JOSE_NAME!r}")
    print("unknown zone screenshot:", screenshot(page, "dashboard-unknown-zone"))

    page.wait_for_timeout(3500)  # a poll every second, were it still polling
    assert statuses.answered == [400, 400]  # the page's one, and the test's own
    assert page.get_attribute("body", "data-state") == "refused"

    # Another token is new input: asked once more, refused once more, and no more.
    page.click("#change-token")
    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")
    wait_for(page, "document.body.dataset.state === 'refused'", seconds=5)
    page.wait_for_timeout(2500)
    assert statuses.answered == [400, 400, 400]

    # Another address is new input too: the clinic's own zone, and its numbers.
    page.goto(f"{server.url}/?poll=1")
    wait_until_page_shows_the_api(page, server.url, token, seconds=10)
    assert page.locator("#message").is_hidden()


class FailingStats(StatsStatuses):
    """The real app, whose mega-stats answers 503 (as when the database is away) while ``failing``."""

    failing = True
    BODY = (b'{"code":503,"status":"Service Unavailable",'
            b'"message":"The database is unavailable or busy; retry shortly."}')

    def __call__(self, environ, start_response):
        if self.failing and environ.get("PATH_INFO") == STATS:
            self.answered.append(503)
            start_response("503 SERVICE UNAVAILABLE",
                           [("Content-Type", "application/json"), ("Retry-After", "1")])
            return [self.BODY]
        return super().__call__(environ, start_response)


def test_a_server_error_is_retried_and_claims_only_the_numbers_shown(sao_jose, open_dashboard):
    failing = FailingStats(sao_jose)
    token = token_for(sao_jose, "sao-jose")
    server, page = open_dashboard(failing, token)
    wait_for(page, "document.body.dataset.state === 'error'", seconds=10)
    banner = page.locator("#message").inner_text()
    assert "503" in banner and "The database is unavailable or busy" in banner
    assert "No numbers to show" in banner and "trying again in 1 s" in banner
    deadline = time.monotonic() + 5
    while len(failing.answered) < 3:  # it keeps asking
        assert time.monotonic() < deadline, failing.answered
        page.wait_for_timeout(100)

    failing.failing = False
    wait_until_page_shows_the_api(page, server.url, token, seconds=5)
    failing.failing = True
    wait_for(page, "document.body.dataset.state === 'error'", seconds=5)
    banner = page.locator("#message").inner_text()
    assert "Showing the numbers of" in banner and "No numbers" not in banner


def test_the_date_shown_is_the_one_of_the_numbers_shown_across_midnight(make_app, serve, context):
    """The server's clock just before midnight in Recife; the browser's is the real one, in Tokyo.
    The page turns to the server's next day, with that day's numbers: no sample of the page pairs
    one day's date with the other day's numbers."""
    recife = ZoneInfo("America/Recife")
    before_midnight = datetime(2026, 12, 1, 23, 59, 52, tzinfo=recife)  # time to load the page first
    with time_machine.travel(before_midnight, tick=True):
        app = make_app()
        build = Builder(app)
        build.tenant("acme", timezone="America/Recife")
        build.appointments("acme", [(datetime(2026, 12, 1, 23, 30, tzinfo=recife), "confirmed"),
                                    (datetime(2026, 12, 2, 10, 0, tzinfo=recife), "pending")])
        server = serve(app)
        token = token_for(app, "acme")
        page = context(timezone_id="Asia/Tokyo", locale="en-US").new_page()
        page.goto(f"{server.url}/?poll=1#token={token}")
        consistent = {"2026-12-01": {"confirmed": 1, "pending": 0},
                      "2026-12-02": {"confirmed": 0, "pending": 1}}
        seen = []
        deadline = time.monotonic() + 20
        while not seen or seen[-1] != "2026-12-02":
            assert time.monotonic() < deadline, seen
            shown = page.evaluate("""() => [
                document.querySelector('[data-field="scope"]').hidden ? null :
                    document.querySelector('[data-field="local-date"]').getAttribute('datetime'),
                ['confirmed', 'pending'].map(s => document.querySelector(
                    `[data-period="today"][data-status="${s}"]`).dataset.value || null)]""")
            day, (confirmed, pending) = shown
            if day is not None:
                assert {"confirmed": int(confirmed), "pending": int(pending)} == consistent[day], shown
                if not seen or seen[-1] != day:
                    seen.append(day)
            page.wait_for_timeout(50)
        assert seen == ["2026-12-01", "2026-12-02"]
        words = page.locator('[data-field="local-date"]').inner_text()
        assert words == "Wednesday, December 2, 2026"  # the server's next day, in the page's locale
        print("after midnight screenshot:", screenshot(page, "dashboard-after-midnight"))


def test_dates_and_times_are_in_the_pages_language_not_the_browsers(clinic, serve, context):
    """A browser in Portuguese, in Tokyo, reading an English page: the date was in the browser's
    language ("Appointments for domingo, 6 de dezembro"); now the whole line is English, and times
    are still in the zone of the numbers."""
    server = serve(clinic)
    token = token_for(clinic, "acme")
    page = context(locale="pt-BR", timezone_id="Asia/Tokyo").new_page()
    page.goto(f"{server.url}/?poll=1#token={token}")
    wait_until_page_shows_the_api(page, server.url, token, seconds=10)
    wait_for(page, "!document.querySelector('[data-field=\"scope\"]').hidden")
    assert page.evaluate("navigator.language") == "pt-BR"

    day, scope = page.evaluate("""() => [  // in one read, whatever a poll brings
        document.querySelector('[data-field="local-date"]').getAttribute('datetime'),
        document.querySelector('[data-field="scope"]').innerText]""")
    scope = " ".join(scope.split())
    assert scope == f"Appointments for {english_date(date.fromisoformat(day))}, time zone America/Recife"
    instant, text = shown_time(page, "checked")
    assert text == instant.astimezone(ZoneInfo("America/Recife")).strftime("%H:%M:%S") + " GMT-3"
    print("dashboard in a Portuguese browser:", screenshot(page, "dashboard-pt-BR-browser"))
