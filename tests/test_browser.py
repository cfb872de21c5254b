"""End to end in a real headless Chromium (Debian's, driven by Playwright), against the app served
by a real HTTP server on a free port: a page on another origin calling the API, the docs page
with the network cut off, the dashboard and the operator page.

Numbers on a page are always compared with what the API answers at the same moment, never with
fixed values: period boundaries depend on the time of day. Screenshots go to ``artifacts/browser``
(or ``$ALIGNWORK_TEST_ARTIFACTS/browser``); the run's summary says where.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from alignwork.services import tenants
from tests.conftest import Builder, record_artifact, service_missing, token_for

pytestmark = pytest.mark.slow

STATS = "/api/v1/appointments/mega-stats"
METRICS = "/api/v1/appointments/cache-metrics"
PERIODS = ("today", "week", "month", "nextMonth")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions",
                 "--disable-default-apps", "--metrics-recording-only", "--no-default-browser-check"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def chromium_path() -> str | None:
    given = os.environ.get("ALIGNWORK_TEST_CHROMIUM")
    if given:
        return given if os.path.exists(given) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        service_missing("Chromium not found (apt-get install chromium, or set ALIGNWORK_TEST_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("Playwright for Python is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class LiveServer:
    """A WSGI app served over real HTTP by werkzeug in a thread, on a free port."""

    def __init__(self, app, host: str = "127.0.0.1"):
        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()


@pytest.fixture
def serve():
    started: list[LiveServer] = []

    def start(app, host: str = "127.0.0.1") -> LiveServer:
        started.append(LiveServer(app, host))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def context(browser):
    opened = []

    def new(**options):
        options.setdefault("viewport", DESKTOP)
        opened.append(browser.new_context(service_workers="block", **options))
        return opened[-1]

    yield new
    for each in opened:
        each.close()


def api(base: str, path: str, token: str, method: str = "GET", body: dict | None = None):
    """One real HTTP request: (status, headers, parsed JSON body or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, error.headers, json.loads(raw) if raw else None


def page_counts(page) -> dict:
    cells = page.eval_on_selector_all(
        "[data-period][data-status]",
        "cells => cells.map(c => [c.dataset.period, c.dataset.status, c.dataset.value || '', c.textContent])")
    counts: dict = {}
    for period, status, value, text in cells:
        if value:
            assert int("".join(ch for ch in text if ch.isdigit())) == int(value), (period, status, text)
            counts.setdefault(period, {})[status] = int(value)
    return counts


def wait_until_page_shows_the_api(page, base, token, seconds: float) -> dict:
    """Until the page's numbers equal the API's, read just after them; the API's numbers."""
    deadline = time.monotonic() + seconds
    while True:
        shown = page_counts(page)
        status, _, answered = api(base, STATS, token)
        assert status == 200
        if shown == answered:
            return answered
        if time.monotonic() > deadline:
            raise AssertionError(f"page shows {shown}, the API says {answered}")
        page.wait_for_timeout(100)


def wait_for(page, expression: str, seconds: float = 10) -> None:
    """Until ``expression`` is true in the page. (Playwright's wait_for_function evaluates a
    string in the page, which the pages' Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {seconds} s: {expression}")
        page.wait_for_timeout(100)


def changed_at(page) -> datetime:
    """When the page says its numbers last changed."""
    stamp = page.get_attribute('[data-field="changed"] time', "datetime")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def screenshot(page, name: str) -> Path:
    path = record_artifact(f"browser/{name}.png")
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def clinic(make_app):
    """An app on SQLite with tenant acme and appointments around now; revocation seen at once."""
    app = make_app(TENANT_MEMO_SECONDS=0)
    build = Builder(app)
    build.tenant("acme", timezone="America/Recife")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    build.appointments("acme", [
        (now - timedelta(hours=3), "confirmed"), (now + timedelta(hours=2), "pending"),
        (now + timedelta(days=2), "confirmed"), (now + timedelta(days=9), "pending"),
        (now + timedelta(days=20), "confirmed"), (now + timedelta(days=35), "pending"),
        (now + timedelta(days=40), "confirmed"), (now - timedelta(days=1), "cancelled"),
    ])
    return app


def book(base: str, token: str, status: str = "confirmed") -> None:
    patient = api(base, "/api/v1/patients", token, "POST", {"name": "Walk-in"})[2]
    soon = (datetime.now(timezone.utc) + timedelta(minutes=90)).isoformat()
    created = api(base, "/api/v1/appointments", token, "POST",
                  {"patientId": patient["id"], "startsAt": soon, "durationMin": 30, "status": status})
    assert created[0] == 201, created


# --- another origin ---------------------------------------------------------------------------

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


# --- the docs, offline ------------------------------------------------------------------------

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

    page.goto(server.url + "/api/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    assert {STATS, METRICS, "/api/v1/appointments", "/api/v1/patients"} <= {p.replace("\u200b", "") for p in paths}
    assert page.locator(".opblock").count() >= 8
    print("docs screenshot:", screenshot(page, "docs"))
    assert elsewhere == []
    assert requested and all(url.startswith(server.url + "/") for url in requested), requested
    assert errors == []


# --- the clinic dashboard ---------------------------------------------------------------------

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


class ConditionalStats:
    """mega-stats as the conditional-request change will answer it: a weak ETag,
    ``Cache-Control: private, no-cache``, and 304 (still with X-Cache) to a matching
    If-None-Match. Wraps the real app on the real server."""

    def __init__(self, app):
        self.app = app
        self.answered: list[int] = []

    def __call__(self, environ, start_response):
        request = Request(environ)
        response = Response.from_app(self.app, environ)
        if request.path == STATS and response.status_code == 200:
            tag = 'W/"' + hashlib.sha256(response.get_data()).hexdigest()[:16] + '"'
            headers = {"ETag": tag, "Cache-Control": "private, no-cache", "X-Cache": response.headers["X-Cache"]}
            if request.headers.get("If-None-Match") == tag:
                response = Response(status=304, headers=headers)
            else:
                response.headers.update(headers)
            self.answered.append(response.status_code)
        return response(environ, start_response)


def test_the_dashboard_revalidates_with_the_etag_and_keeps_its_numbers_on_304(clinic, serve, context):
    conditional = ConditionalStats(clinic)
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


# --- the operator page ------------------------------------------------------------------------

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
