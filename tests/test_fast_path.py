"""The poll's fast path answers exactly what the full path answers.

Every request below is sent twice on the same state: once through the app's WSGI callable (the
fast path, which answers a HIT or a 304 itself and hands anything else on) and once straight to
the full path behind it (``app.wsgi_app.full``). Status line, every header in order, and body
must be byte-equal. The cases where the fast path must answer by itself are checked to really
take it, so the comparison is not the full path against itself.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import time_machine
from prometheus_client import REGISTRY
from werkzeug.test import EnvironBuilder

from alignwork.cache.keys import StatsKey
from alignwork.cache.backend import stats_backend
from alignwork.services import tenants
from alignwork.services.stats import midnight as midnight_module
from tests.conftest import Builder, token_for, utc

STATS = "/api/v1/appointments/mega-stats"
NOW = utc(2026, 5, 13, 14)  # Wednesday, 11:00 in Recife
ORIGIN = "https://dashboard.example"
SNAPSHOT = Path(__file__).parent / "data" / "mega_stats_openapi.json"


@pytest.fixture
def app(make_app, cache_backend):
    with time_machine.travel(NOW, tick=False):
        app = make_app(cache=cache_backend, CORS_ORIGINS=[ORIGIN])
        build = Builder(app)
        build.tenant("acme")
        build.tenant("rival")
        build.appointments("acme", [(NOW + timedelta(hours=1), "confirmed"), (NOW, "pending")])
        yield app


def call(wsgi, app, path=STATS, query="", method="GET", headers=None):
    environ = EnvironBuilder(path=path, query_string=query, method=method, headers=headers or {},
                             base_url="http://localhost").get_environ()
    started = []
    body = wsgi(environ, lambda status, response_headers, exc_info=None: started.append((status, response_headers)))
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    status, response_headers = started[0]
    return status, list(response_headers), data


def both(app, **request):
    """The fast path's answer and the full path's, on the same state (a HIT leaves none)."""
    return call(app.wsgi_app, app, **request), call(app.wsgi_app.full, app, **request)


def answered_fast(app, **request) -> bool:
    environ = EnvironBuilder(path=request.get("path", STATS), query_string=request.get("query", ""),
                             headers=request.get("headers") or {}).get_environ()
    with app.app_context():
        return app.wsgi_app._answer(environ) is not None


def bearer(app, tenant="acme", **kwargs):
    return {"Authorization": "Bearer " + token_for(app, tenant, **kwargs)}


def warm(app, query, headers):
    """The full path once: the entry computed, the query and token remembered."""
    status, found, _ = call(app.wsgi_app.full, app, query=query, headers=headers)
    assert status.startswith("200")
    return dict(found)["ETag"]


QUERIES = ["tenantId=acme", "tenantId=acme&tz=America/Recife", "tz=America%2FRecife", "tz=Asia/Tokyo",
           "tz=America/Recife&tenantId=acme"]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("origin", [None, ORIGIN, "https://elsewhere.example"])
def test_a_hit_and_a_304_are_the_full_paths_bytes(app, query, origin):
    with time_machine.travel(NOW, tick=False):
        headers = bearer(app) | ({"Origin": origin} if origin else {})
        etag = warm(app, query, headers)
        assert answered_fast(app, query=query, headers=headers)
        fast, full = both(app, query=query, headers=headers)
        assert fast == full and fast[0] == "200 OK" and dict(fast[1])["X-Cache"] == "HIT"
        for tags in (etag, etag.removeprefix("W/"), f'W/"other", {etag}', "*"):
            conditional = headers | {"If-None-Match": tags}
            assert answered_fast(app, query=query, headers=conditional)
            fast, full = both(app, query=query, headers=conditional)
            assert fast == full and fast[0] == "304 NOT MODIFIED" and fast[2] == b""
        other = headers | {"If-None-Match": 'W/"not-this-one"'}
        assert both(app, query=query, headers=other)[0] == both(app, query=query, headers=other)[1]


def test_what_the_fast_path_leaves_alone_is_answered_as_before(app):
    """Errors, refusals and anything but a plain GET of a warm entry: the full path's own
    answer, byte for byte (the fast path hands them on)."""
    with time_machine.travel(NOW, tick=False):
        good = bearer(app)
        warm(app, "tenantId=acme", good)
        with app.app_context():
            revoked = bearer(app)
            tenants.revoke_tokens("rival")
        cases = [
            dict(query="tenantId=acme"),  # no token
            dict(query="tenantId=acme", headers={"Authorization": "Bearer not-a-token"}),
            dict(query="tenantId=acme", headers=bearer(app, expires_in=-5)),
            dict(query="tenantId=rival", headers=good),  # another tenant
            dict(query="tenantId=acme", headers=bearer(app, None, scope="admin")),
            dict(query="tenantId=acme&tz=Mars/Olympus", headers=good),
            dict(query="tenantId=acme&colour=red", headers=good),
            dict(query="tz=America/Recife&tz=Asia/Tokyo", headers=good),
            dict(query="tenantId=acme", headers=good, method="HEAD"),
            dict(query="tenantId=acme", headers=good, method="POST"),
            dict(path=STATS + "/", query="tenantId=acme", headers=good),
            dict(query="tenantId=acme", method="OPTIONS",
                 headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
                          "Access-Control-Request-Headers": "authorization, if-none-match"}),
            dict(query="tenantId=acme", headers=good | {"Origin": ORIGIN,
                                                        "Access-Control-Request-Private-Network": "true"}),
            dict(query="tenantId=acme", headers=revoked),
        ]
        for case in cases:
            fast, full = both(app, **case)
            assert fast == full, case


def test_a_miss_and_a_write_go_the_full_way_and_then_hit_fast(app):
    with time_machine.travel(NOW, tick=False):
        headers = bearer(app)
        warm(app, "tenantId=acme", headers)
        Builder(app).appointments("acme", [(NOW + timedelta(hours=2), "confirmed")])
        assert not answered_fast(app, query="tenantId=acme", headers=headers)  # the write retired it
        status, found, body = call(app.wsgi_app, app, query="tenantId=acme", headers=headers)
        assert dict(found)["X-Cache"] == "MISS" and json.loads(body)["today"]["confirmed"] == 2
        assert answered_fast(app, query="tenantId=acme", headers=headers)


def test_an_entry_past_its_safety_net_and_the_minutes_before_midnight_go_the_full_way(app, monkeypatch):
    with time_machine.travel(NOW, tick=False) as clock:
        headers = bearer(app)
        warm(app, "tz=America/Recife", headers)
        clock.shift(app.config["CACHE_DEFAULT_TIMEOUT"] + 1)
        assert not answered_fast(app, query="tz=America/Recife", headers=headers)
    midnight = utc(2026, 5, 14, 3)  # 00:00 in Recife
    app.config.update(STATS_PRECOMPUTE_SECONDS=300, CACHE_DEFAULT_TIMEOUT=900)
    with time_machine.travel(midnight - timedelta(seconds=61), tick=False):  # past every key's moment
        headers = bearer(app)
        warm(app, "tz=America/Recife", headers)  # the full path prepares tomorrow's entry
        tomorrow = StatsKey("acme", "America/Recife", date(2026, 5, 14))
        with app.app_context():
            assert stats_backend().fetch(str(tomorrow))[0] is not None
        assert answered_fast(app, query="tz=America/Recife", headers=headers)  # prepared: nothing to do
        fast, full = both(app, query="tz=America/Recife", headers=headers)
        assert fast == full
        monkeypatch.setattr(midnight_module, "_preparations", midnight_module._Preparations())
        assert not answered_fast(app, query="tz=America/Recife", headers=headers)  # this process has not


def _samples() -> dict[tuple, float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for metric in REGISTRY.collect() for sample in metric.samples
            if sample.name.startswith(("alignwork_", "http_")) and not sample.name.endswith("_created")}


def _moved(before: dict, after: dict) -> dict[tuple, float]:
    return {key: round(after[key] - before.get(key, 0.0), 6) for key in after
            if after[key] != before.get(key, 0.0) and not key[0].endswith("_sum")}


@pytest.mark.parametrize("conditional", [False, True], ids=["hit", "304"])
def test_a_fast_answer_records_every_series_the_full_path_records(app, conditional):
    """The same series move by the same counts (durations aside) whichever path answers."""
    with time_machine.travel(NOW, tick=False):
        headers = bearer(app)
        etag = warm(app, "tenantId=acme", headers)
        if conditional:
            headers = headers | {"If-None-Match": etag}
        moved = []
        for wsgi in (app.wsgi_app.full, app.wsgi_app):
            before = _samples()
            call(wsgi, app, query="tenantId=acme", headers=headers)
            moved.append({key: value for key, value in _moved(before, _samples()).items()
                          if not key[0].endswith("_bucket")})  # which buckets: the duration's
        full, fast = moved
        assert full and {key[0] for key in full} >= {"alignwork_stats_lookup_seconds_count",
                                                     "alignwork_http_requests_total"}
        assert fast == full


def test_the_mega_stats_operation_in_the_openapi_document_is_unchanged(app):
    """The operation and every component it names, as the release before the fast path had them."""
    spec = app.test_client().get("/api/openapi.json").get_json()
    expected = json.loads(SNAPSHOT.read_text())
    assert spec["paths"][STATS] == expected["operation"]
    for ref, component in expected["components"].items():
        found = spec
        for name in ref[2:].split("/"):
            found = found[name]
        assert found == component, ref


def test_the_fast_path_can_be_switched_off(make_app):
    app = make_app(STATS_FAST_PATH=False)
    assert not hasattr(app.wsgi_app, "full")
    with pytest.raises(Exception, match="STATS_FAST_PATH"):
        make_app(STATS_FAST_PATH="yes")
