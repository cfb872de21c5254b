"""Cache settings: every supported Flask-Caching type by its names, values from the environment,
and a setting that cannot work refused at start-up in one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alignwork import create_app
from alignwork.config import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]
SENTINELS = {"CACHE_REDIS_SENTINELS": [["10.0.0.5", 26379]], "CACHE_REDIS_SENTINEL_MASTER": "cache"}
CLUSTER = {"CACHE_REDIS_CLUSTER": "10.0.0.5:7000,10.0.0.6:7000"}


def app_with(**settings):
    return create_app({"TESTING": True, **settings})


@pytest.mark.parametrize("given,resolved", [
    ("NullCache", "alignwork.cache.local.NullCache"),
    ("flask_caching.backends.nullcache.NullCache", "alignwork.cache.local.NullCache"),
    ("SimpleCache", "alignwork.cache.local.SimpleCache"),
    ("flask_caching.backends.SimpleCache", "alignwork.cache.local.SimpleCache"),
    ("RedisCache", "alignwork.cache.redis_backends.RedisCache"),
    ("flask_caching.backends.rediscache.RedisCache", "alignwork.cache.redis_backends.RedisCache"),
    ("RedisSentinelCache", "alignwork.cache.redis_backends.RedisSentinelCache"),
    ("flask_caching.backends.RedisSentinelCache", "alignwork.cache.redis_backends.RedisSentinelCache"),
    ("RedisClusterCache", "alignwork.cache.cluster.RedisClusterCache"),
    ("flask_caching.backends.rediscache.RedisClusterCache", "alignwork.cache.cluster.RedisClusterCache"),
    ("alignwork.cache.local.SimpleCache", "alignwork.cache.local.SimpleCache"),
    ("alignwork.cache.redis_backends.RedisCache", "alignwork.cache.redis_backends.RedisCache"),
    ("alignwork.cache.cluster.RedisClusterCache", "alignwork.cache.cluster.RedisClusterCache"),
])
def test_each_type_is_accepted_by_short_name_and_path(given, resolved):
    extra = SENTINELS if "Sentinel" in given else CLUSTER if "Cluster" in given else {}
    app = app_with(CACHE_TYPE=given, **extra)
    assert app.config["CACHE_TYPE"] == resolved
    assert type(app.extensions["cache"][next(iter(app.extensions["cache"]))]).__module__ + "." + \
        resolved.rsplit(".", 1)[1] == resolved


def test_sentinels_from_the_environment_become_address_pairs(monkeypatch):
    monkeypatch.setenv("ALIGNWORK_CACHE_TYPE", "RedisSentinelCache")
    monkeypatch.setenv("ALIGNWORK_CACHE_REDIS_SENTINELS", '[["10.0.0.5", 26379], ["10.0.0.6", 26379]]')
    monkeypatch.setenv("ALIGNWORK_CACHE_REDIS_SENTINEL_MASTER", "cache")
    monkeypatch.setenv("ALIGNWORK_CACHE_REDIS_PASSWORD", "12345")  # JSON makes it a number
    app = app_with()
    assert app.config["CACHE_REDIS_SENTINELS"] == [("10.0.0.5", 26379), ("10.0.0.6", 26379)]
    assert app.config["CACHE_REDIS_PASSWORD"] == "12345"
    backend = next(iter(app.extensions["cache"].values()))
    pool = backend._read_client.connection_pool
    assert pool.is_master and pool.service_name == "cache"  # reads from the master, not a replica
    ports = [s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels]
    assert ports == [26379] * 2


@pytest.mark.parametrize("settings,message", [
    ({"CACHE_TYPE": "MemcachedCache"},
     "CACHE_TYPE 'MemcachedCache' is not supported: the stats cache needs a cache it can lock and list "
     "keys in"),
    ({"CACHE_TYPE": "RedisCash"},
     "CACHE_TYPE must be one of NullCache, SimpleCache, RedisCache, RedisSentinelCache, "
     "RedisClusterCache (or its flask_caching.backends path), not 'RedisCash'."),
    ({"CACHE_TYPE": "null"}, "CACHE_TYPE 'null' is a Flask-Caching 1 alias that Flask-Caching 2 no longer "
                             "accepts; use 'NullCache'."),
    ({"CACHE_TYPE": None},
     "CACHE_TYPE is empty (null); use one of NullCache, SimpleCache, RedisCache, RedisSentinelCache, "
     "RedisClusterCache (NullCache switches caching off)."),
    ({"CACHE_TYPE": ""}, "CACHE_TYPE is empty; use one of NullCache, SimpleCache"),
    ({"CACHE_TYPE": 5}, "CACHE_TYPE must be the name of one of NullCache, SimpleCache, RedisCache, "
                        "RedisSentinelCache, RedisClusterCache, not 5."),
    ({"CACHE_TYPE": "flask_caching.backends.simplecache.RedisCache"}, "CACHE_TYPE must be one of"),
    ({"CACHE_TYPE": "SimpleCache", "CACHE_REDIS_URL": "redis://cache:6379/0"},
     "CACHE_REDIS_URL is only read by the Redis cache types, and CACHE_TYPE is SimpleCache."),
    ({"CACHE_TYPE": "NullCache", "CACHE_REDIS_HOST": "cache"},
     "CACHE_REDIS_HOST is only read by the Redis cache types, and CACHE_TYPE is NullCache."),
    ({"CACHE_TYPE": "SimpleCache", "CACHE_OPTIONS": {"socket_keepalive": True}},
     "CACHE_OPTIONS is only read by the Redis cache types, and CACHE_TYPE is SimpleCache."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_PASWORD": "x"},
     "CACHE_REDIS_PASWORD is not a cache setting (a typo?)"),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "redis://cache:6379/0", "CACHE_REDIS_HOST": "other"},
     "CACHE_REDIS_HOST ('other') contradicts CACHE_REDIS_URL ('cache'); set one of them."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "redis://cache/0", "CACHE_REDIS_PORT": 6380},
     "CACHE_REDIS_PORT (6380) contradicts CACHE_REDIS_URL (6379); set one of them."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "redis://cache:6379/1", "CACHE_REDIS_DB": 2},
     "CACHE_REDIS_DB (2) contradicts CACHE_REDIS_URL (1); set one of them."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "redis://:a@cache:6379/1", "CACHE_REDIS_PASSWORD": "b"},
     "CACHE_REDIS_PASSWORD (…) contradicts CACHE_REDIS_URL (a different password); set one of them."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "http://cache:6379/0"},
     "CACHE_REDIS_URL must be a redis:// or rediss:// or unix:// URL, not 'http://cache:6379/0'."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_PORT": "six"},
     "CACHE_REDIS_PORT must be a whole number from 1 to 65535, not 'six'."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_DB": -1},
     "CACHE_REDIS_DB must be a whole number of at least 0"),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_SOCKET_TIMEOUT": 0},
     "CACHE_REDIS_SOCKET_TIMEOUT must be a number of seconds above 0, not 0."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_OPTIONS": {"decode_responses": True}},
     "CACHE_OPTIONS 'decode_responses' is set by AlignWork: entries are pickled bytes."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_OPTIONS": {"socket_timeout": 9}},
     "CACHE_OPTIONS 'socket_timeout' is set by AlignWork: set CACHE_REDIS_SOCKET_TIMEOUT instead."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_OPTIONS": {"socket_keepalve": True}},
     "CACHE_OPTIONS 'socket_keepalve' is not an argument of redis-py's client."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_OPTIONS": "socket_keepalive"},
     "CACHE_OPTIONS must be a mapping of redis-py client arguments"),
    ({"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINEL_MASTER": "cache"},
     "CACHE_REDIS_SENTINELS must list the sentinels' addresses"),
    ({"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": [["10.0.0.5", 26379]]},
     "CACHE_REDIS_SENTINEL_MASTER must name the master the sentinels monitor"),
    ({"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_SENTINELS": [["10.0.0.5", "26379"]],
      "CACHE_REDIS_SENTINEL_MASTER": "cache"},
     "CACHE_REDIS_SENTINELS holds ['10.0.0.5', '26379'], which is not a host and port"),
    ({"CACHE_TYPE": "RedisSentinelCache", "CACHE_REDIS_URL": "redis://cache:6379/0", **SENTINELS},
     "CACHE_REDIS_URL is not read by RedisSentinelCache: the sentinels name the master"),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_SENTINELS": [["10.0.0.5", 26379]]},
     "CACHE_REDIS_SENTINELS is not read by RedisCache: only RedisSentinelCache reads it."),
    ({"CACHE_TYPE": "RedisClusterCache"}, "RedisClusterCache needs CACHE_REDIS_CLUSTER"),
    ({"CACHE_TYPE": "RedisClusterCache", "CACHE_REDIS_CLUSTER": "10.0.0.5"},
     "CACHE_REDIS_CLUSTER holds '10.0.0.5', which is not a host and port"),
    ({"CACHE_TYPE": "RedisClusterCache", **CLUSTER, "CACHE_REDIS_URL": "redis://cache:7000"},
     "CACHE_REDIS_CLUSTER and CACHE_REDIS_URL both name the cluster; set one of them."),
    ({"CACHE_TYPE": "RedisClusterCache", "CACHE_REDIS_URL": "redis://cache:7000/2"},
     "CACHE_REDIS_URL names database 2: a Redis Cluster has only database 0."),
    ({"CACHE_TYPE": "RedisClusterCache", **CLUSTER, "CACHE_REDIS_DB": 1},
     "CACHE_REDIS_DB is not read by RedisClusterCache: a Redis Cluster has only database 0."),
    ({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_CLUSTER": "10.0.0.5:7000"},
     "CACHE_REDIS_CLUSTER is not read by RedisCache: only RedisClusterCache reads it."),
    ({"CACHE_KEY_PREFIX": "alignwork:{prod}:"}, "CACHE_KEY_PREFIX must not contain '{' or '}'"),
    ({"CACHE_TYPE": "alignwork.cache.redis_backends.RedisClusterCache", **CLUSTER},
     "CACHE_TYPE must be one of"),
])
def test_settings_that_cannot_work_are_refused_in_one_line(settings, message):
    with pytest.raises(ConfigurationError) as refused:
        app_with(**settings)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("old,new", [
    ("alignwork.cache_backends.NullCache", "alignwork.cache.local.NullCache"),
    ("alignwork.cache_backends.SimpleCache", "alignwork.cache.local.SimpleCache"),
    ("alignwork.redis_backends.RedisCache", "alignwork.cache.redis_backends.RedisCache"),
    ("alignwork.redis_backends.RedisSentinelCache", "alignwork.cache.redis_backends.RedisSentinelCache"),
    ("alignwork.redis_backends.RedisClusterCache", "alignwork.cache.cluster.RedisClusterCache"),
])
def test_a_backend_path_of_an_earlier_release_is_refused_naming_the_new_one(monkeypatch, old, new):
    monkeypatch.setenv("ALIGNWORK_CACHE_TYPE", old)
    with pytest.raises(ConfigurationError) as refused:
        app_with()
    short = new.rsplit(".", 1)[1]
    assert str(refused.value) == \
        f"CACHE_TYPE {old!r} names a module that has moved; use {new!r} (or {short!r})."


@pytest.mark.parametrize("settings", [
    {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "redis://cache:6379/1", "CACHE_REDIS_HOST": "cache",
     "CACHE_REDIS_PORT": 6379, "CACHE_REDIS_DB": 1},
    {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": "redis://cache:6379", "CACHE_REDIS_DB": 2,
     "CACHE_REDIS_PASSWORD": "p"},
    {"CACHE_TYPE": "RedisCache", "CACHE_OPTIONS": {"socket_keepalive": True, "health_check_interval": 30}},
    {"CACHE_TYPE": "RedisSentinelCache", **SENTINELS, "CACHE_OPTIONS": {"sentinel_username": "watcher"}},
    {"CACHE_TYPE": "RedisClusterCache", "CACHE_REDIS_URL": "redis://cache:7000/0"},
    {"CACHE_TYPE": "SimpleCache", "CACHE_REDIS_SOCKET_TIMEOUT": 2},  # tuning keys are harmless here
])
def test_settings_that_agree_are_accepted(settings):
    app_with(**settings)


def test_wsgi_refuses_in_one_line_without_a_traceback(tmp_path):
    env = {**os.environ, "ALIGNWORK_CACHE_TYPE": "null", "ALIGNWORK_SECRET_KEY": "k" * 40,
           "ALIGNWORK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/w.sqlite"}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "AlignWork refuses to start: CACHE_TYPE is empty (null); use one of NullCache, SimpleCache, "
        "RedisCache, RedisSentinelCache, RedisClusterCache (NullCache switches caching off)."]
