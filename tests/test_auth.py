"""Bearer tokens bound to a tenant: every endpoint refuses the wrong caller the same way."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import time_machine
from itsdangerous import URLSafeSerializer

from alignwork.auth import SALT, parse_duration
from alignwork.extensions import db
from alignwork.models import Tenant
from alignwork.services.changes.listener import ChangeListener
from tests.conftest import Builder, token_for, utc

ROOT = Path(__file__).resolve().parents[1]

ENDPOINTS = [
    ("get", "/api/v1/patients", None),
    ("post", "/api/v1/patients", {"name": "Ana"}),
    ("get", "/api/v1/appointments", None),
    ("post", "/api/v1/appointments", {"patientId": 1, "startsAt": "2026-05-13T12:00:00Z", "durationMin": 30}),
    ("get", "/api/v1/appointments/{id}", None),
    ("patch", "/api/v1/appointments/{id}", {"status": "confirmed"}),
    ("delete", "/api/v1/appointments/{id}", None),
    ("get", "/api/v1/appointments/mega-stats", None),
]
IDS = [f"{m.upper()} {u}" for m, u, _ in ENDPOINTS]


@pytest.fixture
def world(app, client):
    build = Builder(app)
    build.tenant("acme")
    build.tenant("rival")
    patient = build.patient("acme")
    [appointment] = build.appointments("acme", [(_at(2026, 5, 13, 12), "pending")], patient_id=patient)
    return {"appointment": appointment}


def _at(*args):
    return utc(*args)


def call(client, method, url, body, world, token=None, tenant_id="acme", auth=True):
    url = url.format(id=world["appointment"])
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    query = f"?tenantId={tenant_id}" if tenant_id and method != "post" else ""
    kwargs = {"headers": headers, "auth": auth}
    if body is not None:
        kwargs["json"] = {**body, **({"tenantId": tenant_id} if tenant_id and method == "post" else {})}
    return getattr(client, method)(url + query, **kwargs)


def assert_401(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["code"] == 401


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_no_token_is_401(client, world, method, url, body):
    response = call(client, method, url, body, world, auth=False)
    assert_401(response)
    assert "error=" not in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Basic YWxhZGRpbjpvcGVu", "Bearer", "Bearer    ", "Bearer not.a.token", "token"])
@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_malformed_token_is_401(client, world, method, url, body, header):
    response = getattr(client, method)(url.format(id=world["appointment"]) + "?tenantId=acme",
                                       headers={"Authorization": header}, json=body)
    assert_401(response)


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_token_signed_with_another_key_is_401(client, world, method, url, body):
    forged = URLSafeSerializer("another-key-" + "x" * 40, salt=SALT).dumps(
        {"sub": "acme", "scope": "tenant", "iat": time.time(), "exp": int(time.time()) + 3600})
    response = call(client, method, url, body, world, token=forged)
    assert_401(response)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_expired_token_is_401(app, client, world, method, url, body):
    token = token_for(app, "acme", expires_in=60)
    with time_machine.travel(time.time() + 61, tick=False):
        response = call(client, method, url, body, world, token=token)
    assert_401(response)
    assert response.get_json()["message"] == "Token expired."


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_revoked_token_is_401_but_new_tokens_work(app, client, world, method, url, body):
    old = token_for(app, "acme")
    result = app.test_cli_runner().invoke(args=["tenants", "revoke-tokens", "acme"])
    assert result.exit_code == 0, result.output
    response = call(client, method, url, body, world, token=old)
    assert_401(response)
    assert response.get_json()["message"] == "Token revoked."
    fresh = call(client, method, url, body, world, token=token_for(app, "acme"))
    assert fresh.status_code == {"post": 201, "delete": 204}.get(method, 200)
    assert fresh.status_code == 204 or fresh.get_json()


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_other_tenants_token_is_403_when_naming_this_tenant(app, client, world, method, url, body):
    response = call(client, method, url, body, world, token=token_for(app, "rival"))
    assert response.status_code == 403
    assert "tenantId" in response.get_json()["message"]


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_admin_token_cannot_act_for_a_tenant(app, client, world, method, url, body):
    response = call(client, method, url, body, world, token=token_for(app, None, scope="admin"))
    assert response.status_code == 403
    assert response.get_json()["message"].startswith("Admin tokens cannot act for a tenant")


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_other_tenants_appointment_is_404_with_own_token_and_no_tenant_id(app, client, world, method):
    response = getattr(client, method)(f"/api/v1/appointments/{world['appointment']}",
                                       headers={"Authorization": f"Bearer {token_for(app, 'rival')}"},
                                       json={"status": "confirmed"} if method == "patch" else None)
    assert response.status_code == 404 and list(response.get_json()["errors"]) == ["id"]
    assert client.get(f"/api/v1/appointments/{world['appointment']}?tenantId=acme").get_json()["status"] == "pending"


def test_tenant_id_is_optional_with_a_token(app, client, world):
    headers = {"Authorization": f"Bearer {token_for(app, 'acme')}"}
    listing = client.get("/api/v1/appointments", headers=headers).get_json()
    assert listing["total"] == 1 and listing["data"][0]["tenantId"] == "acme"
    created = client.post("/api/v1/patients", headers=headers, json={"name": "Caio"}).get_json()
    assert created["tenantId"] == "acme"


@time_machine.travel(datetime(2026, 5, 13, 15, tzinfo=timezone.utc), tick=True)  # midday in Recife
def test_cross_tenant_counts_never_leak(make_app, cache_backend):
    app = make_app(cache=cache_backend)
    build = Builder(app)
    for tenant, n in (("acme", 3), ("rival", 5)):
        build.tenant(tenant, timezone="America/Recife")
        build.appointments(tenant, [(_now_plus(minutes=5), "confirmed")] * n)
    client = app.test_client()
    for _ in range(3):
        for tenant, n in (("acme", 3), ("rival", 5)):
            headers = {"Authorization": f"Bearer {token_for(app, tenant)}"}
            response = client.get("/api/v1/appointments/mega-stats", headers=headers)
            assert response.get_json()["today"]["confirmed"] == n
            other = "rival" if tenant == "acme" else "acme"
            denied = client.get(f"/api/v1/appointments/mega-stats?tenantId={other}", headers=headers)
            assert denied.status_code == 403 and "today" not in denied.get_json()


def _now_plus(**delta):
    return datetime.now(timezone.utc) + timedelta(**delta)


def _revoke_with_the_command(app):
    result = app.test_cli_runner().invoke(args=["tenants", "revoke-tokens", "acme"])
    assert "every worker refuses them from its next request" in result.output


def _revoke_in_a_shell_session(app):
    """What a developer might type into ``flask shell``: the commit rewrites the cached record."""
    with app.app_context():
        db.session.get(Tenant, "acme").tokens_revoked_at = _now_plus(seconds=1)
        db.session.commit()


@pytest.mark.parametrize("revoke", [_revoke_with_the_command, _revoke_in_a_shell_session],
                         ids=["command", "shell-session"])
def test_revocation_reaches_every_worker_at_once_on_a_shared_cache(make_app, revoke):
    """The operator's process writes the new cut-off through to Redis: no waiting."""
    worker = make_app(cache="redis", shared_as="deployment")
    operator = make_app(cache="redis", shared_as="deployment", create_schema=False)
    Builder(worker).tenant("acme")
    headers = {"Authorization": f"Bearer {token_for(worker, 'acme')}"}
    client = worker.test_client()
    assert client.get("/api/v1/appointments/mega-stats", headers=headers).status_code == 200
    revoke(operator)
    assert_401(client.get("/api/v1/appointments/mega-stats", headers=headers))


def test_revocation_reaches_a_per_process_cache_through_the_listener(make_app):
    """A SimpleCache lives in the server's memory, which the operator's process cannot reach:
    the server's own change listener reads the new cut-off from the database on its next tick."""
    worker = make_app(shared_as="deployment")
    operator = make_app(shared_as="deployment", create_schema=False)
    Builder(worker).tenant("acme")
    headers = {"Authorization": f"Bearer {token_for(worker, 'acme')}"}
    client = worker.test_client()
    listener = ChangeListener(worker)
    with worker.app_context():
        listener.tick()
    assert client.get("/api/v1/appointments/mega-stats", headers=headers).status_code == 200
    result = operator.test_cli_runner().invoke(args=["tenants", "revoke-tokens", "acme"])
    assert "change listener applies it" in result.output
    assert client.get("/api/v1/appointments/mega-stats", headers=headers).status_code == 200
    with worker.app_context():
        assert listener.tick().written == 1
    assert_401(client.get("/api/v1/appointments/mega-stats", headers=headers))
    listener.close()


def test_token_command_prints_a_working_token_last(app, client, runner, world):
    result = runner.invoke(args=["tenants", "token", "acme", "--expires", "15m"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    response = client.get("/api/v1/appointments/mega-stats", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


@pytest.mark.parametrize("args,message", [
    (["tenants", "token", "ghost"], "not found"),
    (["tenants", "token"], "Give either"),
    (["tenants", "token", "acme", "--admin"], "Give either"),
    (["tenants", "token", "acme", "--expires", "forever"], "duration"),
    (["tenants", "revoke-tokens", "ghost"], "not found"),
])
def test_token_commands_refuse_bad_input(runner, world, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0 and message in result.output


def test_admin_token_command(app, runner):
    token = runner.invoke(args=["tenants", "token", "--admin"]).output.strip().splitlines()[-1]
    with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
        from alignwork.auth import authenticate
        assert authenticate(f"Bearer {token}").scope == "admin"


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "10", "1w", "-5m", "5 m"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_openapi_declares_the_bearer_scheme_and_stays_public(client):
    spec = client.get("/api/openapi.json", auth=False).get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"bearerAuth": []}]
    for path in ("/healthz", "/readyz", "/api/docs"):
        assert client.get(path, auth=False).status_code == 200


# -- configuration that cannot be deployed unsafely ------------------------------------------


def _import_wsgi(env_overrides: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "ALIGNWORK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/w.sqlite",
           "ALIGNWORK_INSTANCE_PATH": str(tmp_path / "instance"), **env_overrides}
    return subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("overrides", [
    {},
    {"ALIGNWORK_SECRET_KEY": "too-short"},
    {"ALIGNWORK_SECRET_KEY": "k" * 48, "ALIGNWORK_DEBUG": "true"},
], ids=["no key", "short key", "debug on"])
def test_production_refuses_unsafe_config(tmp_path, overrides):
    result = _import_wsgi({"ALIGNWORK_ENV": "production", **overrides}, tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("AlignWork refuses to start:")
    assert ("SECRET_KEY" if "DEBUG" not in str(overrides) else "DEBUG") in lines[0]
    assert "Traceback" not in result.stderr


def test_production_starts_with_a_long_key(tmp_path):
    result = _import_wsgi({"ALIGNWORK_ENV": "production", "ALIGNWORK_SECRET_KEY": "k" * 48}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "k" * 48 not in result.stderr + result.stdout


def test_development_generates_a_key_and_warns(tmp_path):
    result = _import_wsgi({}, tmp_path)
    assert result.returncode == 0
    assert "No SECRET_KEY configured" in result.stderr


ADMIN_ENDPOINTS = ["/api/v1/appointments/cache-metrics", "/metrics"]


@pytest.mark.parametrize("path", ADMIN_ENDPOINTS)
@pytest.mark.parametrize("variant", ["none", "malformed", "forged", "expired"])
def test_admin_endpoints_refuse_bad_tokens_with_401(app, client, path, variant):
    now = time.time()
    tokens = {
        "none": None,
        "malformed": "not.a.token",
        "forged": URLSafeSerializer("another-key-" + "x" * 40, salt=SALT).dumps(
            {"sub": None, "scope": "admin", "iat": now, "exp": int(now) + 3600}),
        "expired": token_for(app, None, expires_in=60, scope="admin"),
    }
    headers = {"Authorization": f"Bearer {tokens[variant]}"} if tokens[variant] else {}
    with time_machine.travel(now + (61 if variant == "expired" else 0), tick=False):
        response = client.get(path, headers=headers, auth=False)
    assert_401(response)


@pytest.mark.parametrize("path", ADMIN_ENDPOINTS)
def test_admin_endpoints_refuse_tenant_tokens_and_serve_admins(app, client, build, path):
    build.tenant("acme")
    tenant = client.get(path, headers={"Authorization": f"Bearer {token_for(app, 'acme')}"})
    assert tenant.status_code == 403
    assert tenant.get_json()["message"] == "This endpoint needs an admin token."
    admin = client.get(path, headers={"Authorization": f"Bearer {token_for(app, None, scope='admin')}"})
    assert admin.status_code == 200
    if path == "/metrics":
        assert b"alignwork_http_requests_total" in admin.data
    else:
        assert {"hits", "misses", "bypasses", "hit_rate", "cache_size"} <= set(admin.get_json())


@pytest.mark.parametrize("scope", ["tenant", "admin"])
def test_a_remembered_token_still_expires(app, client, build, scope):
    build.tenant("acme")
    token = token_for(app, "acme" if scope == "tenant" else None, expires_in=60, scope=scope)
    path = "/api/v1/appointments/mega-stats" if scope == "tenant" else "/api/v1/appointments/cache-metrics"
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(path, headers=headers).status_code == 200   # verified, and remembered
    with time_machine.travel(time.time() + 61, tick=False):
        response = client.get(path, headers=headers)
    assert_401(response)
    assert response.get_json()["message"] == "Token expired."


def test_other_spellings_of_a_valid_token_are_refused_and_not_remembered(app, client, build):
    build.tenant("acme")
    token = token_for(app, "acme")
    assert client.get("/api/v1/appointments/mega-stats",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200
    for suffix in ("!", "@@@@", "~" * 50):
        response = client.get("/api/v1/appointments/mega-stats",
                              headers={"Authorization": f"Bearer {token}{suffix}"})
        assert_401(response)
    assert len(app.extensions["alignwork.verified_tokens"]._claims) == 1
