"""CORS on /api/v1: which origin gets which Access-Control-* headers, and which settings are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alignwork import create_app
from alignwork.config import ConfigurationError
from tests.conftest import Builder, token_for

pytestmark = pytest.mark.usefixtures("afternoon")  # entries are per local date

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = "http://localhost:5173"
OTHER = "http://localhost:5174"
STATS = "/api/v1/appointments/mega-stats"
METRICS = "/api/v1/appointments/cache-metrics"
TENANT = "/api/v1/tenant"


@pytest.fixture
def cors_app(make_app):
    app = make_app(CORS_ORIGINS=[ALLOWED, "https://clinic.example.com"])
    Builder(app).tenant("acme")
    return app


def preflight(method: str, headers: str = "authorization") -> dict:
    return {"Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


# (request method, path, Origin, extra request headers, use a token, Access-Control-Allow-Origin expected)
TABLE = {
    "simple GET, allowed origin": ("GET", STATS, ALLOWED, {}, True, ALLOWED),
    "simple GET, second allowed origin": ("GET", STATS, "https://clinic.example.com", {}, True,
                                          "https://clinic.example.com"),
    "origin compared without case": ("GET", STATS, "HTTP://LOCALHOST:5173", {}, True, "HTTP://LOCALHOST:5173"),
    "simple GET, unlisted origin": ("GET", STATS, OTHER, {}, True, None),
    "unlisted: allowed origin as a prefix": ("GET", STATS, ALLOWED + "0", {}, True, None),
    "unlisted: allowed host as a subdomain": ("GET", STATS, "http://localhost:5173.evil.example", {}, True, None),
    "unlisted: other scheme": ("GET", STATS, "https://localhost:5173", {}, True, None),
    "no Origin (same origin, curl)": ("GET", STATS, None, {}, True, None),
    "401 readable by an allowed origin": ("GET", STATS, ALLOWED, {}, False, ALLOWED),
    "outside /api/v1": ("GET", "/healthz", ALLOWED, {}, False, None),
    "preflight GET, allowed origin": ("OPTIONS", STATS, ALLOWED, preflight("GET"), False, ALLOWED),
    "preflight POST with JSON, allowed origin": (
        "OPTIONS", "/api/v1/appointments", ALLOWED, preflight("POST", "authorization, content-type"), False, ALLOWED),
    "preflight POST with an Idempotency-Key, allowed origin": (
        "OPTIONS", "/api/v1/appointments", ALLOWED,
        preflight("POST", "authorization, content-type, idempotency-key"), False, ALLOWED),
    "preflight of the stream resuming with Last-Event-ID, allowed origin": (
        "OPTIONS", STATS + "/stream", ALLOWED, preflight("GET", "authorization, last-event-id"), False, ALLOWED),
    "preflight PATCH, allowed origin": ("OPTIONS", "/api/v1/appointments/7", ALLOWED,
                                        preflight("PATCH", "Authorization,Content-Type"), False, ALLOWED),
    "preflight DELETE, allowed origin": ("OPTIONS", "/api/v1/appointments/7", ALLOWED, preflight("DELETE"),
                                         False, ALLOWED),
    "preflight of an admin endpoint, allowed origin": ("OPTIONS", METRICS, ALLOWED, preflight("GET"), False, ALLOWED),
    "preflight, unlisted origin": ("OPTIONS", STATS, OTHER, preflight("GET"), False, None),
}


@pytest.mark.parametrize("method,path,origin,extra,with_token,allow_origin", TABLE.values(), ids=TABLE.keys())
def test_cors_table(cors_app, method, path, origin, extra, with_token, allow_origin):
    headers = dict(extra)
    if origin:
        headers["Origin"] = origin
    if with_token:
        headers["Authorization"] = "Bearer " + token_for(cors_app, "acme")
    response = cors_app.test_client().open(path, method=method, headers=headers, auth=False)

    assert response.status_code < 500
    assert response.headers.get("Access-Control-Allow-Origin") == allow_origin
    assert response.headers.getlist("Access-Control-Allow-Origin") == ([allow_origin] if allow_origin else [])
    assert "Access-Control-Allow-Credentials" not in response.headers
    if allow_origin is None:
        assert not [name for name in response.headers.keys() if name.startswith("Access-Control-")]
        return
    is_preflight = method == "OPTIONS"
    if is_preflight:
        assert response.status_code == 200  # a browser needs an ok status, token or not
        assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "PATCH", "DELETE"}
        asked = {h.strip().lower() for h in extra["Access-Control-Request-Headers"].split(",")}
        allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed == asked
        assert int(response.headers["Access-Control-Max-Age"]) > 0
    else:
        exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"x-cache", "etag"} <= exposed
        assert response.status_code == (200 if with_token else 401)
        if with_token:
            assert response.headers["X-Cache"] in ("HIT", "MISS")


def exposed(response) -> set[str]:
    return {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}


def test_an_allowed_origin_reads_what_the_numbers_are_for_on_200_and_304(cors_app):
    client = cors_app.test_client()
    headers = {"Origin": ALLOWED, "Authorization": "Bearer " + token_for(cors_app, "acme")}
    fresh = client.get(STATS + "?tz=Asia/Tokyo", headers=headers, auth=False)
    again = client.get(STATS + "?tz=Asia/Tokyo", headers={**headers, "If-None-Match": fresh.headers["ETag"]},
                       auth=False)
    assert (fresh.status_code, again.status_code) == (200, 304)
    for response in (fresh, again):
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert {"x-cache", "etag", "x-stats-zone", "x-stats-local-date"} <= exposed(response)
        assert response.headers["X-Stats-Zone"] == "Asia/Tokyo"
        assert response.headers["X-Stats-Local-Date"] == fresh.headers["X-Stats-Local-Date"]


def test_an_allowed_origin_reads_the_tenant_and_the_replay_header(cors_app):
    response = cors_app.test_client().get(TENANT, headers={
        "Origin": ALLOWED, "Authorization": "Bearer " + token_for(cors_app, "acme")}, auth=False)
    assert response.status_code == 200 and response.get_json()["id"] == "acme"
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "idempotent-replayed" in exposed(response)


def test_preflight_grants_only_the_apis_methods(cors_app):
    response = cors_app.test_client().options(STATS, headers={"Origin": ALLOWED, **preflight("PUT")}, auth=False)
    assert "Access-Control-Allow-Methods" not in response.headers


def test_preflight_grants_only_the_apis_request_headers(cors_app):
    response = cors_app.test_client().options(
        STATS, headers={"Origin": ALLOWED, **preflight("GET", "x-custom, if-none-match")}, auth=False)
    assert response.headers["Access-Control-Allow-Headers"] == "if-none-match"


def test_any_origin_is_a_wildcard_without_credentials(make_app):
    app = make_app(CORS_ORIGINS=["*"])
    Builder(app).tenant("acme")
    response = app.test_client().get(STATS, headers={
        "Origin": "http://anything.example", "Authorization": "Bearer " + token_for(app, "acme")}, auth=False)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_no_origins_by_default_means_no_cors_headers(make_app):
    app = make_app()
    assert app.config["CORS_ORIGINS"] == []
    Builder(app).tenant("acme")
    client = app.test_client()
    simple = client.get(STATS, headers={"Origin": ALLOWED, "Authorization": "Bearer " + token_for(app, "acme")},
                        auth=False)
    asked = client.options(STATS, headers={"Origin": ALLOWED, **preflight("GET")}, auth=False)
    for response in (simple, asked):
        assert not [name for name in response.headers.keys() if name.startswith("Access-Control-")]


@pytest.mark.parametrize("origins", [
    [],
    ["*"],
    ["http://localhost:5173", "https://clinic.example.com", "http://127.0.0.1:8080", "http://[::1]:8000"],
])
def test_valid_origins_are_accepted(origins):
    assert create_app({"TESTING": True, "CORS_ORIGINS": origins}).config["CORS_ORIGINS"] == origins


@pytest.mark.parametrize("origins", [
    "http://localhost:5173",                        # a string, not a list
    {"origin": "http://localhost:5173"},
    [5173],
    ["localhost:5173"],                             # no scheme
    ["http://localhost:5173/"],                     # a trailing slash never matches an Origin
    ["http://clinic.example.com/dashboard"],        # a path
    ["https://.*\\.example\\.com"],                 # flask-cors would match this regex as a prefix
    ["http://localhost:99999"],
    ["*", "http://localhost:5173"],                 # "any" beside a list
    ["http://user@clinic.example.com"],
    [""],
])
def test_malformed_origins_are_refused_at_start(origins):
    with pytest.raises(ConfigurationError, match="CORS_ORIGINS"):
        create_app({"TESTING": True, "CORS_ORIGINS": origins})


def test_origins_come_from_the_environment_as_json(monkeypatch):
    monkeypatch.setenv("ALIGNWORK_CORS_ORIGINS", '["http://localhost:5173"]')
    assert create_app({"TESTING": True}).config["CORS_ORIGINS"] == ["http://localhost:5173"]


def test_the_server_refuses_to_start_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ALIGNWORK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/w.sqlite",
           "ALIGNWORK_INSTANCE_PATH": str(tmp_path / "instance"), "ALIGNWORK_SECRET_KEY": "k" * 48,
           "ALIGNWORK_CORS_ORIGINS": "http://localhost:5173"}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("AlignWork refuses to start: CORS_ORIGINS")
