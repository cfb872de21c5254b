"""The live dashboard in Chromium against the shipped gunicorn (gevent workers): a psql INSERT
shows without a reload within a second, the page falls back to polling when its stream is
refused and upgrades back, a reload of the server (HUP) is survived, and three tabs share one
stream."""

from __future__ import annotations

import http.client
import json
import signal
import time

import pytest

from tests.browser.conftest import page_counts, wait_for
from tests.test_gunicorn import _no_server_outlives_its_test  # noqa: F401
from tests.test_stream import Events, _start

pytestmark = pytest.mark.slow


def _streams_open(stack) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", stack.server.port, timeout=10)
    conn.request("GET", "/api/v1/appointments/cache-metrics",
                 headers={"Authorization": f"Bearer {stack.server.admin}"})
    return json.loads(conn.getresponse().read())["streams_open"]


def _total(counts: dict) -> int:
    return sum(counts[period]["confirmed"] for period in ("month", "nextMonth"))


def _shows_total(page, total: int) -> bool:
    counts = page_counts(page)
    return bool(counts) and _total(counts) == total


def _until(condition, seconds: float, step: float = 0.02) -> float:
    """Seconds until ``condition()`` holds (AssertionError past ``seconds``)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError("not within %.1f s" % seconds)
        time.sleep(step)
    return time.monotonic() - started


def test_a_psql_insert_shows_within_a_second_and_a_reload_is_survived(tmp_path, context):
    stack = _start(tmp_path, "sqlite-simple", workers=1)
    tenant, token, patient = stack.tenant()
    page = context().new_page()
    requests: list = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"http://127.0.0.1:{stack.server.port}/#token={token}")
    wait_for(page, "document.body.dataset.live === 'live'")
    assert page.locator('[data-field="interval"]').inner_text() == "live"
    _until(lambda: bool(page_counts(page)), 5)
    before = _total(page_counts(page))

    lags = []
    for _ in range(3):
        committed = stack.insert(tenant, patient)
        before += 1
        _until(lambda: _shows_total(page, before), 5)
        lags.append(time.monotonic() - committed)
    print("psql INSERT to the page, seconds:", [round(lag, 3) for lag in lags])
    assert max(lags) <= 1.0, lags

    polls = [url for url in requests if url.endswith("/mega-stats")]
    page.wait_for_timeout(3000)  # live and quiet: no polling (Playwright delivers events while waiting)
    assert [url for url in requests if url.endswith("/mega-stats")] == polls

    stack.server.process.send_signal(signal.SIGHUP)  # new workers; the old ones end their streams
    time.sleep(3)
    wait_for(page, "document.body.dataset.live === 'live'")
    stack.insert(tenant, patient)
    _until(lambda: _shows_total(page, before + 1), 5)


def test_refused_streams_fall_back_to_polling_and_upgrade_back(tmp_path, context):
    stack = _start(tmp_path, "sqlite-simple", workers=1, env={"ALIGNWORK_STREAMS_PER_TENANT": "1"})
    tenant, token, patient = stack.tenant()
    held = Events(stack.server.port, token=token)  # the tenant's one stream
    assert held.status == 200
    page = context().new_page()
    page.goto(f"http://127.0.0.1:{stack.server.port}/?poll=1#token={token}")
    _until(lambda: bool(page_counts(page)), 5)
    assert page.evaluate("document.body.dataset.live") == "polling"
    assert "polling" in page.locator('[data-field="interval"]').inner_text()
    before = _total(page_counts(page))
    stack.insert(tenant, patient)
    _until(lambda: _shows_total(page, before + 1), 5)  # the polls show it

    held.close()  # the slot frees; the page tries again (Retry-After) and is live again
    wait_for(page, "document.body.dataset.live === 'live'", seconds=20)
    stack.insert(tenant, patient)
    _until(lambda: _shows_total(page, before + 2), 3)


def test_three_tabs_share_one_stream(tmp_path, context):
    stack = _start(tmp_path, "sqlite-simple", workers=1)
    tenant, token, patient = stack.tenant()
    browser_context = context()
    pages = [browser_context.new_page() for _ in range(3)]
    for page in pages:
        page.goto(f"http://127.0.0.1:{stack.server.port}/#token={token}")
    for page in pages:
        wait_for(page, "document.body.dataset.live === 'live'")
        _until(lambda: bool(page_counts(page)), 5)
    assert _streams_open(stack) == 1
    before = _total(page_counts(pages[0]))
    stack.insert(tenant, patient)
    for page in pages:
        _until(lambda: _shows_total(page, before + 1), 3)

    pages[0].close()  # whichever tab led, one of the others leads now, on one stream
    _until(lambda: _streams_open(stack) == 1, 10, step=0.2)
    for page in pages[1:]:
        wait_for(page, "document.body.dataset.live === 'live'")
    stack.insert(tenant, patient)
    for page in pages[1:]:
        _until(lambda: _shows_total(page, before + 2), 5)


def test_an_unchanging_dashboard_sends_one_request_a_stream_lifetime(tmp_path, context):
    """Quiet: with nothing changing, the page's only requests are the stream's reconnects at the
    end of its lifetime (here 4 s; an hour by default), where polling would send one every 30 s."""
    lifetime = 4
    stack = _start(tmp_path, "sqlite-simple", workers=1, env={"ALIGNWORK_STREAM_MAX_SECONDS": str(lifetime)})
    _, token, _ = stack.tenant()
    page = context().new_page()
    # Polling every 2 s when not live, so that a poll while live would show within the window.
    page.goto(f"http://127.0.0.1:{stack.server.port}/?poll=2#token={token}")
    wait_for(page, "document.body.dataset.live === 'live'")
    _until(lambda: bool(page_counts(page)), 5)
    requests: list = []
    page.on("request", lambda request: requests.append(request.url))
    window = 14
    page.wait_for_timeout(window * 1000)  # (Playwright delivers the page's events while waiting)
    streams = [url for url in requests if "/mega-stats/stream" in url]
    assert [url for url in requests if url not in streams] == []  # no polls, nothing else
    # A lifetime is 4 s less up to a tenth of jitter: at most one reconnect per 3.6 s, at least
    # one per 4 s plus the retry (1 to 2 s here).
    assert window // (lifetime + 2) <= len(streams) <= window / (lifetime * 0.9) + 1, streams
    assert page.evaluate("document.body.dataset.live") == "live"
