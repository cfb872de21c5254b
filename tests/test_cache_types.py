"""The Flask-Caching types configured the Flask-Caching way: NullCache switches caching off, and
RedisCache honours CACHE_REDIS_HOST/PORT/DB/PASSWORD (from the environment too)."""

from __future__ import annotations

import uuid

import pytest

from alignwork import create_app, metrics
from alignwork.extensions import cache, db
from alignwork.services.changes import generations
from tests.conftest import Builder, TenantClient, stamp_head
from tests.redis_servers import RedisServer

pytestmark = pytest.mark.usefixtures("afternoon")  # entries are per local date

STATS = "/api/v1/appointments/mega-stats?tenantId=acme"
PASSWORD = "s3cret-" + uuid.uuid4().hex[:6]


def _poll(client) -> str:
    response = client.get(STATS)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.headers["X-Cache"]


@pytest.mark.parametrize("name", ["NullCache", "flask_caching.backends.NullCache",
                                  "flask_caching.backends.nullcache.NullCache"])
def test_nullcache_computes_every_poll(make_app, name):
    app = make_app(CACHE_TYPE=name)
    Builder(app).tenant("acme")
    client = app.test_client()
    before = metrics.cache_summary(None)["computations"]
    assert [_poll(client) for _ in range(4)] == ["BYPASS"] * 4
    assert metrics.cache_summary(None)["computations"] - before == 4
    with app.app_context():
        assert cache.cache.shared  # nothing cached, so every gunicorn worker agrees
        assert generations.invalidate("acme") is True  # nothing to retire, nothing queued
    listed = app.test_cli_runner().invoke(args=["cache", "keys"])
    assert listed.exit_code == 0 and listed.stdout == ""


@pytest.fixture(scope="module")
def protected(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("protected"), password=PASSWORD).start()
    yield server
    server.stop()


def test_host_port_db_and_password_from_the_environment_are_where_entries_land(
        monkeypatch, tmp_path, protected):
    prefix = f"alignwork-test-{uuid.uuid4().hex[:8]}:"
    for key, value in {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": "127.0.0.1",
                       "CACHE_REDIS_PORT": str(protected.port), "CACHE_REDIS_DB": "3",
                       "CACHE_REDIS_PASSWORD": PASSWORD, "CACHE_KEY_PREFIX": prefix}.items():
        monkeypatch.setenv(f"ALIGNWORK_{key}", value)
    app = create_app({"TESTING": True, "SECRET_KEY": "k" * 40,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/types.sqlite"})
    app.test_client_class = TenantClient
    with app.app_context():
        db.create_all()
        stamp_head()
    Builder(app).tenant("acme")
    client = app.test_client()
    assert [_poll(client), _poll(client)] == ["MISS", "HIT"]

    on_db3 = {k.decode() for k in protected.client(db=3).scan_iter(match=prefix + "*")}
    assert {prefix + "gen:{acme}", prefix + "tenant:{acme}"} <= on_db3
    assert any(key.startswith(prefix + "stats:{acme}:") for key in on_db3)
    assert not list(protected.client(db=0).scan_iter(match=prefix + "*"))

    listed = app.test_cli_runner().invoke(args=["cache", "keys"])
    assert listed.exit_code == 0 and listed.stdout.startswith("acme\tAmerica/Recife\t")
    with app.app_context():
        db.engine.dispose()


def test_a_wrong_password_is_an_unavailable_cache_not_an_empty_one(make_app, protected):
    app = make_app(CACHE_TYPE="RedisCache", CACHE_REDIS_HOST="127.0.0.1", CACHE_REDIS_PORT=protected.port,
                   CACHE_REDIS_DB=3, CACHE_REDIS_PASSWORD="wrong")
    Builder(app).tenant("acme")
    assert _poll(app.test_client()) == "BYPASS"
    listed = app.test_cli_runner().invoke(args=["cache", "keys"])
    assert listed.exit_code == 1 and "cache unavailable" in listed.output


def test_a_password_beside_a_url_without_one_is_used(make_app, protected):
    app = make_app(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=f"redis://127.0.0.1:{protected.port}/4",
                   CACHE_REDIS_PASSWORD=PASSWORD, CACHE_KEY_PREFIX="alignwork-url-test:")
    Builder(app).tenant("acme")
    client = app.test_client()
    assert [_poll(client), _poll(client)] == ["MISS", "HIT"]
    assert protected.client(db=4).exists("alignwork-url-test:gen:{acme}")
    protected.client(db=4).flushdb()
