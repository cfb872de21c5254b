"""End to end in a real headless Chromium (Debian's, driven by Playwright), against the app served
by a real HTTP server on a free port.

Numbers on a page are always compared with what the API answers at the same moment, never with
fixed values: period boundaries depend on the time of day. Screenshots go to ``artifacts/browser``
(or ``$ALIGNWORK_TEST_ARTIFACTS/browser``); the run's summary says where. Without Chromium these
tests skip, or fail under ALIGNWORK_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

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

from tests.conftest import Builder, record_artifact, service_missing

STATS = "/api/v1/appointments/mega-stats"
METRICS = "/api/v1/appointments/cache-metrics"
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
    """An app on SQLite with tenant acme and appointments around now."""
    app = make_app()
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
