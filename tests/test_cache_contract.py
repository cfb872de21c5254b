"""Flask-Caching's contract, on every backend the app accepts.

The app hands users its ``cache`` (``alignwork.extensions.cache``, a ``flask_caching.Cache``).
Whatever ``CACHE_TYPE`` names, that object must behave as Flask-Caching documents it:

- **Redis up** (``TestMethodsUp``, ``TestCountersAndDecoratorsUp``, ``TestIgnoreErrors``): every
  method of ``Cache``, the backend's ``inc``/``dec`` and the decorators give Flask-Caching's
  results. The expectations are
  written from Flask-Caching's and cachelib's documentation (``Cache``'s proxies, cachelib's
  ``BaseCache`` docstrings: ``set`` True, ``add`` False for an existing key, ``delete`` whether
  the key existed, ``delete_many``/``set_many`` the keys deleted/set, ``inc`` "initialized with
  delta", ``ignore_delete_many_errors`` …). NullCache is held to its own documented behaviour:
  nothing is cached. The same tests also run on Flask-Caching's *own* classes (ids
  ``flask_caching-…``): they check these expectations, not the app, and must always pass.
- **Redis down** (``TestRedisDown``, ``TestOutageAndHeal``; the three Redis types): every call
  returns its documented failure value instead of raising, decorated functions compute (in
  debug mode too), one warning per outage, and deletes lost to the outage are counted in it.
- **CACHE_IGNORE_ERRORS** (``TestIgnoreErrors``) is honoured while Redis is up, and fail-open
  wins during an outage (``TestRedisDown.test_ignore_errors_off_delete_many_fails_open``).
- **flask shell** lets a user define and memoize a function.

The Redis servers are private (``tests/redis_servers.py``): started once per module (per test
process) and stopped for outages. Without ``redis-server`` those tests skip with the reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import redis
from flask import Flask
from flask_caching import Cache

from alignwork import create_app
from alignwork.extensions import cache as app_cache
from tests.conftest import REDIS_URL, require_redis
from tests.redis_servers import MASTER_NAME, Cluster, RedisServer, wait_for

ROOT = Path(__file__).resolve().parents[1]

BACKENDS = ("NullCache", "SimpleCache", "RedisCache", "RedisSentinelCache", "RedisClusterCache")
REDIS_BACKENDS = BACKENDS[2:]
# Flask-Caching's own classes, configured alike: a check on the expectations themselves. Not its
# RedisClusterCache, whose clear() lists keys with KEYS on one random node (it fails
# test_clear_removes_this_caches_entries; the app's clears every primary).
REFERENCE_BACKENDS = ("NullCache", "SimpleCache", "RedisCache", "RedisSentinelCache")
UP_TARGETS = [("alignwork", kind) for kind in BACKENDS] + \
    [("flask_caching", kind) for kind in REFERENCE_BACKENDS]
UP_IDS = [f"{impl}-{kind}" for impl, kind in UP_TARGETS]

BACKOFF = 0.3  # CACHE_BACKOFF_SECONDS: short, so a healed Redis is used again quickly
HEAL_SECONDS = 20


# -- private Redis deployments, one per Redis type, with an outage switch ------------------------


class Deployment:
    """The server(s) behind one Redis cache type: the settings that reach them, and an outage
    (``stop``: every server gone, connections refused) that ``start`` ends."""

    kind: str

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def reference_settings(self) -> dict[str, Any]:
        """The same deployment as Flask-Caching's own class reads it."""
        return self.settings()

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SingleDeployment(Deployment):
    kind = "RedisCache"

    def __init__(self, directory: Path):
        self.server = RedisServer(directory)
        self.server.start()

    def settings(self) -> dict[str, Any]:
        return {"CACHE_REDIS_URL": self.server.url}

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def close(self) -> None:
        self.server.stop()


class SentinelDeployment(Deployment):
    """A master and one sentinel watching it (quorum 1), without a replica: enough for the
    contract (the failover itself is test_cache_sentinel.py's), quick to start, and no replica
    to promote during an outage, nor for Flask-Caching's own class to read stale values from."""

    kind = "RedisSentinelCache"

    def __init__(self, directory: Path):
        self.master = RedisServer(directory)
        self.master.start()
        self.sentinel = RedisServer(directory, sentinel=True)
        self.sentinel.args = [f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 1",
                              f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
                              f"sentinel failover-timeout {MASTER_NAME} 3000"]
        self.sentinel.start()
        self._wait_for_master()

    def _wait_for_master(self) -> None:
        def seen() -> bool:
            state = self.sentinel.client().sentinel_master(MASTER_NAME)
            return state["is_master"] and not state["is_sdown"] and not state["is_odown"]
        wait_for(seen, 20, "the sentinel did not see the master up")

    def settings(self) -> dict[str, Any]:
        return {"CACHE_REDIS_SENTINELS": [["127.0.0.1", self.sentinel.port]],
                "CACHE_REDIS_SENTINEL_MASTER": MASTER_NAME}

    def reference_settings(self) -> dict[str, Any]:
        return {"CACHE_REDIS_SENTINELS": [("127.0.0.1", self.sentinel.port)],
                "CACHE_REDIS_SENTINEL_MASTER": MASTER_NAME}

    def stop(self) -> None:
        self.master.stop()

    def start(self) -> None:
        self.master.start()
        self._wait_for_master()

    def close(self) -> None:
        self.sentinel.stop()
        self.master.stop()


class ClusterDeployment(Deployment):
    kind = "RedisClusterCache"

    def __init__(self, directory: Path):
        self.cluster = Cluster(directory).start()

    def settings(self) -> dict[str, Any]:
        return {"CACHE_REDIS_CLUSTER": self.cluster.startup_nodes}

    def stop(self) -> None:
        for node in self.cluster.nodes:
            node.stop()

    def start(self) -> None:
        for node in self.cluster.nodes:
            node.start()  # back with its nodes.conf: the same cluster
        wait_for(lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in self.cluster.nodes),
                 30, "the cluster did not reach state ok again")

    def close(self) -> None:
        self.cluster.stop()


_DEPLOYMENTS = {"RedisCache": SingleDeployment, "RedisSentinelCache": SentinelDeployment,
                "RedisClusterCache": ClusterDeployment}


@pytest.fixture(scope="module")
def deployments(tmp_path_factory):
    """``deployments(kind)``: the module's private deployment for a Redis type, started on first
    use (skips with the reason when redis-server or redis-cli is missing)."""
    made: dict[str, Deployment] = {}

    def get(kind: str) -> Deployment | None:
        if kind not in _DEPLOYMENTS:
            return None
        if kind not in made:
            made[kind] = _DEPLOYMENTS[kind](tmp_path_factory.mktemp(kind.lower()))
        return made[kind]

    yield get
    for deployment in made.values():
        deployment.close()


# -- the apps under test ---------------------------------------------------------------------------


@dataclass
class Target:
    """A cache to hold to the contract: the app's (``impl == "alignwork"``) or Flask-Caching's own."""

    impl: str
    kind: str
    app: Flask
    cache: Cache
    prefix: str

    @property
    def null(self) -> bool:
        return self.kind == "NullCache"

    @property
    def redis(self) -> bool:
        return self.kind in REDIS_BACKENDS


def _prefix() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}:"


def build_app(kind: str, deployment: Deployment | None, directory: Path, **config) -> Target:
    """An app from the factory, configured as the existing tests configure each type."""
    prefix = _prefix()
    settings = {"TESTING": True, "SECRET_KEY": "contract-" + uuid.uuid4().hex,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory}/{uuid.uuid4().hex[:8]}.sqlite",
                "CACHE_TYPE": kind, "CACHE_KEY_PREFIX": prefix}
    if deployment is not None:
        settings.update(deployment.settings())
        # Patient sockets: two busy cores must not pass for an outage in the "up" tests.
        settings.update(CACHE_BACKOFF_SECONDS=BACKOFF, CACHE_REDIS_SOCKET_TIMEOUT=5)
    settings.update(config)
    app = create_app(settings, instance_path=str(directory / f"instance-{uuid.uuid4().hex[:8]}"))
    return Target("alignwork", kind, app, app_cache, prefix)


def build_reference(kind: str, deployment: Deployment | None, **config) -> Target:
    """Flask-Caching's own backend class, on the same deployment."""
    prefix = _prefix()
    app = Flask("contract_reference")
    settings = {"CACHE_TYPE": kind, "CACHE_KEY_PREFIX": prefix, "CACHE_NO_NULL_WARNING": True}
    if deployment is not None:
        settings.update(deployment.reference_settings())
    settings.update(config)
    reference = Cache(app, config=settings)
    return Target("flask_caching", kind, app, reference, prefix)


def make_target(impl: str, kind: str, deployments, directory: Path, **config) -> Target:
    deployment = deployments(kind)
    if impl == "alignwork":
        return build_app(kind, deployment, directory, **config)
    return build_reference(kind, deployment, **config)


@pytest.fixture
def target(request, deployments, tmp_path, monkeypatch):
    """The cache of one app, inside its app context. ``Cache`` decorators read ``cache.app``
    (the last app bound to it): set to this app, as in a process serving one app."""
    impl, kind = request.param
    made = make_target(impl, kind, deployments, tmp_path)
    monkeypatch.setattr(made.cache, "app", made.app)
    with made.app.app_context():
        yield made


def up_targets(cls):
    return pytest.mark.parametrize("target", UP_TARGETS, ids=UP_IDS, indirect=True)(cls)


def kind_of(value: Any) -> tuple[type, Any]:
    """Type and value: so that ``False`` is not ``0``, nor ``None`` ``[]``."""
    return type(value), value


# -- Redis up: Flask-Caching's results -------------------------------------------------------------

VALUES = {"text": "héllo", "int": 42, "negative": -7, "float": 3.25, "bool": True, "bytes": b"\x00raw",
          "list": [1, "a", None], "dict": {"a": {"b": [1, 2]}}, "tuple": (1, 2), "zero": 0}


@up_targets
class TestMethodsUp:
    """Each method of ``Cache``, as Flask-Caching documents it (NullCache: nothing is cached)."""

    def test_get_of_a_missing_key_is_none(self, target):
        assert target.cache.get("missing") is None

    def test_set_returns_true_and_get_returns_the_value(self, target):
        stored = {name: target.cache.set(f"v-{name}", value) for name, value in VALUES.items()}
        assert stored == {name: True for name in VALUES}
        read = {name: kind_of(target.cache.get(f"v-{name}")) for name in VALUES}
        expected = {name: kind_of(None if target.null else value) for name, value in VALUES.items()}
        assert read == expected

    def test_set_overwrites(self, target):
        assert target.cache.set("k", "old") is True
        assert target.cache.set("k", "new") is True
        assert target.cache.get("k") == (None if target.null else "new")

    def test_set_with_timeout_zero_and_a_timedelta(self, target):
        assert target.cache.set("forever", 1, timeout=0) is True
        assert target.cache.set("delta", 2, timeout=dt.timedelta(minutes=5)) is True
        expected = [None, None] if target.null else [1, 2]
        assert [target.cache.get("forever"), target.cache.get("delta")] == expected
        assert [target.cache.has("forever"), target.cache.has("delta")] == [not target.null] * 2

    def test_an_entry_expires_after_its_timeout(self, target):
        assert target.cache.set("brief", "v", timeout=1) is True
        wait_for(lambda: target.cache.get("brief") is None, 4, "the entry did not expire")
        assert target.cache.has("brief") is False

    def test_add_stores_only_a_missing_key(self, target):
        first = target.cache.add("a", "first")
        second = target.cache.add("a", "second")
        # NullCache: BaseCache.add answers True ("works like set"), and stores nothing.
        assert (first, second) == ((True, True) if target.null else (True, False))
        assert target.cache.get("a") == (None if target.null else "first")

    def test_delete_says_whether_the_key_existed(self, target):
        target.cache.set("d", 1)
        existed = target.cache.delete("d")
        missing = target.cache.delete("never-set")
        # NullCache: BaseCache.delete answers True.
        assert (existed, missing) == ((True, True) if target.null else (True, False))
        assert target.cache.get("d") is None

    def test_has(self, target):
        target.cache.set("h", 0)
        assert (target.cache.has("h"), target.cache.has("never-set")) == (not target.null, False)

    def test_get_many_lists_values_in_key_order(self, target):
        target.cache.set("alpha", 1)
        target.cache.set("gamma", {"g": 3})
        found = target.cache.get_many("alpha", "missing", "gamma")
        assert found == ([None, None, None] if target.null else [1, None, {"g": 3}])
        assert isinstance(found, list)
        assert target.cache.get_many("alpha") == [None if target.null else 1]

    def test_get_dict_maps_each_key(self, target):
        target.cache.set("alpha", 1)
        target.cache.set("beta", "b")
        found = target.cache.get_dict("alpha", "missing", "beta")
        assert found == {"alpha": None if target.null else 1, "missing": None,
                         "beta": None if target.null else "b"}

    def test_set_many_returns_the_keys_set(self, target):
        mapping = {"alpha": 1, "beta": [2], "gamma": "three"}
        assert target.cache.set_many(mapping) == ["alpha", "beta", "gamma"]
        assert target.cache.set_many({"delta": 4}, timeout=60) == ["delta"]
        expected = [None] * 4 if target.null else [1, [2], "three", 4]
        assert target.cache.get_many("alpha", "beta", "gamma", "delta") == expected

    def test_delete_many_returns_the_keys_deleted(self, target):
        target.cache.set_many({"alpha": 1, "beta": 2, "gamma": 3})
        # cachelib: "a key that is absent after the attempt counts as deleted".
        assert target.cache.delete_many("alpha", "missing", "beta") == ["alpha", "missing", "beta"]
        assert target.cache.get_many("alpha", "beta", "gamma") == [None, None, None if target.null else 3]

    def test_unlink_removes_the_keys(self, target):
        target.cache.set_many({"alpha": 1, "beta": 2, "gamma": 3})
        result = target.cache.unlink("alpha", "beta")
        # Flask-Caching's Redis classes return what Redis' UNLINK returns (the number of keys
        # removed); ``Cache.unlink`` falls back to ``delete_many`` (the keys) elsewhere.
        assert kind_of(result) == (kind_of(2) if target.redis else kind_of(["alpha", "beta"]))
        assert target.cache.get_many("alpha", "beta", "gamma") == [None, None, None if target.null else 3]

    def test_clear_removes_this_caches_entries(self, target):
        keys = [f"entry-{n}" for n in range(12)]  # on every node of a cluster
        target.cache.set_many({key: n for n, key in enumerate(keys)})
        assert target.cache.clear() is True
        assert {key: target.cache.has(key) for key in keys} == {key: False for key in keys}
        assert target.cache.get_many(*keys) == [None] * len(keys)

    def test_clear_leaves_other_prefixes_alone(self, target, deployments, tmp_path):
        if not target.redis:
            pytest.skip("a per-process cache has no other apps' keys")
        neighbour = make_target(target.impl, target.kind, deployments, tmp_path)
        with neighbour.app.app_context():
            assert neighbour.cache.set("kept", "theirs") is True
        target.cache.set("alpha", 1)
        target.cache.clear()  # what it answers is test_clear_removes_this_caches_entries' business
        with neighbour.app.app_context():
            assert neighbour.cache.get("kept") == "theirs"



@up_targets
class TestCountersAndDecoratorsUp:
    """The backend's inc/dec, memoize, cached, delete_memoized and delete_memoized_verhash."""

    def test_inc_and_dec(self, target):
        backend = target.cache.cache
        results = [backend.inc("n"), backend.inc("n", 5), backend.dec("n", 2), backend.dec("m", 3)]
        # "If the key does not yet exist it is initialized with delta" (-delta for dec).
        # NullCache holds nothing, so every call starts again from the delta.
        assert results == ([1, 5, -2, -3] if target.null else [1, 6, 4, -3])
        assert target.cache.get("n") == (None if target.null else 4)
        target.cache.set("s", 10)
        assert backend.inc("s") == (1 if target.null else 11)
        assert backend.dec("s", 4) == (-4 if target.null else 7)

    def test_memoize_computes_once_per_arguments(self, target):
        calls = []

        @target.cache.memoize(timeout=60)
        def square(x):
            calls.append(x)
            return x * x

        results = [square(3), square(3), square(x=3), square(4), square(4)]
        assert results == [9, 9, 9, 16, 16]
        assert calls == ([3, 3, 3, 4, 4] if target.null else [3, 4])
        assert square.uncached(5) == 25

    def test_delete_memoized_forgets_all_or_some_arguments(self, target):
        calls = []

        @target.cache.memoize(timeout=60)
        def add(a, b):
            calls.append((a, b))
            return a + b

        add(1, 2), add(3, 4)
        calls.clear()
        target.cache.delete_memoized(add, 1, 2)
        assert [add(1, 2), add(3, 4)] == [3, 7]
        assert calls == ([(1, 2), (3, 4)] if target.null else [(1, 2)])
        calls.clear()
        target.cache.delete_memoized(add)
        assert [add(1, 2), add(3, 4)] == [3, 7]
        assert calls == [(1, 2), (3, 4)]

    def test_delete_memoized_verhash_forgets_the_function(self, target):
        calls = []

        @target.cache.memoize(timeout=60)
        def double(x):
            calls.append(x)
            return 2 * x

        assert [double(1), double(1)] == [2, 2]
        target.cache.delete_memoized_verhash(double)
        assert double(1) == 2
        assert calls == ([1, 1, 1] if target.null else [1, 1])

    def test_cached_with_a_key_prefix_is_that_key(self, target):
        calls = []

        @target.cache.cached(timeout=60, key_prefix="contract-list")
        def listing():
            calls.append(1)
            return ["a", "b"]

        assert [listing(), listing()] == [["a", "b"]] * 2
        assert len(calls) == (2 if target.null else 1)
        assert target.cache.get("contract-list") == (None if target.null else ["a", "b"])
        target.cache.delete("contract-list")
        assert listing() == ["a", "b"]
        assert len(calls) == (3 if target.null else 2)

    def test_cached_view_is_per_request_path(self, target):
        calls = []

        @target.cache.cached(timeout=60)
        def view():
            calls.append(1)
            return "page"

        for path in ("/contract/a", "/contract/a", "/contract/b"):
            with target.app.test_request_context(path):
                assert view() == "page"
        assert len(calls) == (3 if target.null else 2)


# -- CACHE_IGNORE_ERRORS, Redis up --------------------------------------------------------------------


class _KeepsOneKey:
    """A Redis client through which one key cannot be deleted (DEL/UNLINK skip it): the key
    that "fails to delete" of cachelib's ``ignore_delete_many_errors``."""

    def __init__(self, client: Any, name: str):
        self._client = client
        self._names = {name, name.encode()}

    def _without(self, names):
        return [n for n in names if n not in self._names]

    def delete(self, *names):
        kept = self._without(names)
        return self._client.delete(*kept) if kept else 0

    def unlink(self, *names):
        kept = self._without(names)
        return self._client.unlink(*kept) if kept else 0

    def __getattr__(self, attribute):
        return getattr(self._client, attribute)


class _KeepsOneEntry(dict):
    """A SimpleCache store out of which one key cannot be popped."""

    def __init__(self, entries: dict, key: str):
        super().__init__(entries)
        self._key = key

    def pop(self, key, *default):
        if key == self._key:
            return None
        return super().pop(key, *default)


def make_undeletable(target: Target, key: str) -> None:
    backend = target.cache.cache
    if hasattr(backend, "_write_client"):
        backend._write_client = _KeepsOneKey(backend._write_client, target.prefix + key)
    else:
        backend._cache = _KeepsOneEntry(backend._cache, key)


@pytest.mark.parametrize("ignore", [None, False, True],
                         ids=["ignore-errors-unset", "ignore-errors-off", "ignore-errors-on"])
@pytest.mark.parametrize(("impl", "kind"), UP_TARGETS, ids=UP_IDS)
class TestIgnoreErrors:
    """Flask-Caching hands ``CACHE_IGNORE_ERRORS`` (default False) to the backend as cachelib's
    ``ignore_delete_many_errors``: "If False, delete_many() will raise a RuntimeError if any key
    fails to delete. Keys that do not exist are considered successfully deleted and do not
    raise." (cachelib 0.17 and Flask-Caching 2.5 docstrings; ``delete_many`` then returns "all
    successfully deleted keys".)"""

    def test_the_setting_reaches_the_backend(self, deployments, tmp_path, impl, kind, ignore):
        if kind == "NullCache":
            pytest.skip("Flask-Caching's NullCache is built without the setting: it deletes nothing")
        config = {} if ignore is None else {"CACHE_IGNORE_ERRORS": ignore}
        made = make_target(impl, kind, deployments, tmp_path, **config)
        with made.app.app_context():
            assert made.cache.cache.ignore_delete_many_errors is bool(ignore)  # unset: False

    def test_a_key_that_fails_to_delete(self, deployments, tmp_path, impl, kind, ignore):
        if kind == "NullCache":
            pytest.skip("NullCache holds no key that could fail to delete")
        config = {} if ignore is None else {"CACHE_IGNORE_ERRORS": ignore}
        made = make_target(impl, kind, deployments, tmp_path, **config)
        with made.app.app_context():
            assert made.cache.set_many({"alpha": 1, "sticky": 2, "beta": 3}) == ["alpha", "sticky", "beta"]
            make_undeletable(made, "sticky")
            if ignore:
                assert made.cache.delete_many("alpha", "sticky", "beta") == ["alpha", "beta"]
            else:
                with pytest.raises(RuntimeError, match="sticky"):
                    made.cache.delete_many("alpha", "sticky", "beta")
            assert [made.cache.has(k) for k in ("alpha", "sticky", "beta")] == [False, True, False]


# -- Redis down: failure values, never an exception ---------------------------------------------------

# Set in every app of the outage pool before Redis goes away.
WARM = {"k1": "one", "k2": [2], "k3": {"three": 3}, "n": 5}

DOWN_CALLS: dict[str, tuple[Callable[[Cache], Any], Any]] = {
    "get": (lambda c: c.get("k1"), None),
    "set": (lambda c: c.set("k1", "new"), False),
    "add": (lambda c: c.add("fresh", 1), False),
    "delete": (lambda c: c.delete("k1"), False),
    "has": (lambda c: c.has("k1"), False),
    "clear": (lambda c: c.clear(), False),
    "get_many": (lambda c: c.get_many("k1", "k2", "missing"), [None, None, None]),
    "get_dict": (lambda c: c.get_dict("k1", "k2", "missing"), {"k1": None, "k2": None, "missing": None}),
    "set_many": (lambda c: c.set_many({"k1": 1, "k2": 2}), []),
    "delete_many": (lambda c: c.delete_many("k1", "k2", "missing"), []),
    "unlink": (lambda c: c.unlink("k1", "k2"), []),
    "inc": (lambda c: c.cache.inc("n"), None),
    "dec": (lambda c: c.cache.dec("n", 2), None),
}


def _outcome(call: Callable[[], Any]) -> tuple:
    try:
        return ("returned", kind_of(call()))
    except Exception as exc:  # noqa: BLE001 - the contract is "never an exception": report it
        return ("raised", f"{type(exc).__module__}.{type(exc).__name__}: {exc}")


def _warnings(caplog) -> list[tuple[str, str, str]]:
    return [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture(scope="class")
def outage(request, deployments, tmp_path_factory):
    """Apps that used Redis, one per test of the class for this Redis type; then every server
    of the deployment stops, until the class is done. Each test takes a fresh app (its own
    breaker, its first failure in the test)."""
    kind = request.param
    deployment = deployments(kind)
    wanted = sum(1 for item in request.session.items
                 if item.cls is request.cls and item.callspec.params.get("outage") == kind)
    directory = tmp_path_factory.mktemp(f"outage-{kind.lower()}")
    pool = []
    for _ in range(wanted):
        made = build_app(kind, deployment, directory, CACHE_IGNORE_ERRORS=False)
        with made.app.app_context():
            # The app talks to Redis before the outage (whatever it answers: TestMethodsUp
            # judges that), so the outage finds open connections and a known topology.
            _outcome(lambda: made.cache.set_many(WARM))
            _outcome(lambda: made.cache.get("k1"))
        pool.append(made)
    deployment.stop()
    try:
        yield pool
    finally:
        deployment.start()


@pytest.fixture
def down(outage, monkeypatch, caplog):
    made = outage.pop()
    monkeypatch.setattr(made.cache, "app", made.app)
    caplog.set_level(logging.WARNING)
    with made.app.app_context():
        yield made


@pytest.mark.parametrize("outage", REDIS_BACKENDS, indirect=True, scope="class")
class TestRedisDown:
    """Every server of the deployment stopped after the app used it."""

    @pytest.mark.parametrize("method", list(DOWN_CALLS))
    def test_method_gives_its_failure_value(self, down, method):
        call, expected = DOWN_CALLS[method]
        outcomes = [_outcome(lambda: call(down.cache)) for _ in range(3)]  # failing, then backing off
        assert outcomes == [("returned", kind_of(expected))] * 3

    @pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
    def test_memoized_function_computes(self, down, debug):
        down.app.debug = debug
        calls = []

        @down.cache.memoize(timeout=60)
        def square(x):
            calls.append(x)
            return x * x

        assert [_outcome(lambda: square(3)) for _ in range(3)] == [("returned", kind_of(9))] * 3
        assert calls == [3, 3, 3]

    @pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
    def test_cached_function_and_view_compute(self, down, debug):
        down.app.debug = debug
        calls = []

        @down.cache.cached(timeout=60, key_prefix="contract-list")
        def listing():
            calls.append("listing")
            return ["a"]

        @down.cache.cached(timeout=60)
        def view():
            calls.append("view")
            return "page"

        outcomes = [_outcome(listing) for _ in range(2)]
        for _ in range(2):
            with down.app.test_request_context("/contract/page"):
                outcomes.append(_outcome(view))
        assert outcomes == [("returned", kind_of(["a"]))] * 2 + [("returned", kind_of("page"))] * 2
        assert calls == ["listing", "listing", "view", "view"]

    @pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
    def test_delete_memoized_returns_quietly(self, down, debug):
        down.app.debug = debug

        @down.cache.memoize(timeout=60)
        def add(a, b):
            return a + b

        assert _outcome(lambda: down.cache.delete_memoized(add)) == ("returned", kind_of(None))
        assert _outcome(lambda: down.cache.delete_memoized(add, 1, 2)) == ("returned", kind_of(None))

    def test_delete_memoized_verhash_returns_quietly(self, down):
        @down.cache.memoize(timeout=60)
        def add(a, b):
            return a + b

        assert _outcome(lambda: down.cache.delete_memoized_verhash(add)) == ("returned", kind_of(None))

    def test_ignore_errors_off_delete_many_fails_open(self, down):
        """CACHE_IGNORE_ERRORS=False (the pool's setting): during an outage no key is deleted,
        and fail-open wins over the RuntimeError."""
        assert _outcome(lambda: down.cache.delete_many("k1", "k3", "missing")) == ("returned", kind_of([]))

    def test_one_warning_for_many_failing_calls(self, down, caplog):
        @down.cache.memoize(timeout=60)
        def square(x):
            return x * x

        for _ in range(5):
            for call, _ in DOWN_CALLS.values():
                _outcome(lambda: call(down.cache))
            _outcome(lambda: square(2))
        seen = _warnings(caplog)
        assert len(seen) == 1, seen
        name, level, _ = seen[0]
        assert name.split(".")[0] == "alignwork" and level == "WARNING", seen


# -- An outage that ends ----------------------------------------------------------------------------


def _counted(caplog, deletes: int) -> list[tuple[str, str, str]]:
    """The app's warnings that give the number of lost deletes (loosely: the number, then a
    word about deleting)."""
    return [w for w in _warnings(caplog) if w[0].split(".")[0] == "alignwork"
            and re.search(rf"\b{deletes}\b\D{{0,40}}delet", w[2], re.IGNORECASE)]


@pytest.mark.parametrize("kind", REDIS_BACKENDS, scope="class")
class TestOutageAndHeal:
    def test_lost_deletes_are_counted_in_a_warning(self, kind, deployments, tmp_path, caplog, monkeypatch):
        """A delete lost to an outage leaves the old value to be served once Redis is back; a
        warning of that outage (logged during it, or when Redis is back and the app uses it
        again) says how many deletes were lost. Kept loose: the number of deletes made, then a
        word about deleting, within HEAL_SECONDS of Redis answering again."""
        deployment = deployments(kind)
        made = build_app(kind, deployment, tmp_path)
        monkeypatch.setattr(made.cache, "app", made.app)
        caplog.set_level(logging.WARNING)
        keys = ("a", "b", "c")
        with made.app.app_context():
            assert made.cache.set_many(dict.fromkeys(keys, "old")) == list(keys)
            deployment.stop()
            try:
                lost = [_outcome(lambda: made.cache.delete(key)) for key in keys]
            finally:
                deployment.start()
            assert lost == [("returned", kind_of(False))] * len(keys)
            # Redis is back: the app's traffic touches the keys again, until it has said so.
            deadline = time.monotonic() + HEAL_SECONDS
            while not _counted(caplog, len(keys)) and time.monotonic() < deadline:
                made.cache.set("contract-heal-probe", 1)
                made.cache.get_many(*keys)
                for key in keys:
                    made.cache.get(key)
                time.sleep(0.1)
            assert made.cache.set("contract-heal-probe", 2) is True, "the app does not use Redis again"
        assert _counted(caplog, len(keys)), _warnings(caplog)


# -- flask shell ------------------------------------------------------------------------------------

SHELL_SCRIPT = """\
calls = []
@cache.memoize(timeout=60)
def square(x):
    calls.append(x)
    return x * x

print("computed", square(4), square(4), len(calls))
cache.delete_memoized(square)
print("after-delete", square(4), len(calls))
"""


@pytest.mark.parametrize("kind", ["SimpleCache", "RedisCache"])
def test_flask_shell_memoizes_a_function_the_user_defines(tmp_path, kind):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ALIGNWORK_", "FLASK_")) and key != "DATABASE_URL"}
    env.update(FLASK_APP="alignwork", ALIGNWORK_INSTANCE_PATH=str(tmp_path / "instance"),
               ALIGNWORK_SECRET_KEY="s" * 40, ALIGNWORK_CACHE_TYPE=kind)
    prefix = None
    if kind == "RedisCache":
        require_redis()
        prefix = _prefix()
        env.update(ALIGNWORK_CACHE_REDIS_URL=REDIS_URL, ALIGNWORK_CACHE_KEY_PREFIX=prefix)
    try:
        # The shell, as every command but `flask db`, needs the database migrated.
        subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=60)
        shell = subprocess.run([sys.executable, "-m", "flask", "shell"], cwd=ROOT, env=env,
                               input=SHELL_SCRIPT, capture_output=True, text=True, timeout=60)
    finally:
        if prefix:
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
    out = shell.stdout
    assert "computed 16 16 1" in out, shell.stdout + shell.stderr
    assert "after-delete 16 2" in out, shell.stdout + shell.stderr
    assert "Traceback" not in shell.stderr, shell.stderr
