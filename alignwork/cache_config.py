"""The cache settings: which backend ``CACHE_TYPE`` names, and the refusal of settings that cannot work.

Flask-Caching reads its settings forgivingly: a key the chosen backend does not read is ignored,
a URL silently wins over host and port, a password next to a URL is dropped. A deployment that
believes it talks to its password-protected Redis on database 3 then caches in another one, and
nothing says so. Every cache setting is therefore checked here, once, before any backend is
built, and a setting that cannot work is refused with one line naming it
(``ConfigurationError``: gunicorn, ``wsgi.py`` and the ``flask`` command print that line and
stop). The backends' factories (``cache_backends.py``) then read settings known to be complete
and consistent.

Connection keys (where the cache is) given for a type that does not read them are refused: they
say the operator believes the app uses a cache it does not. This app's tuning keys
(``CACHE_REDIS_SOCKET_TIMEOUT``, ``CACHE_BACKOFF_SECONDS``) have defaults and only matter with
Redis, so one settings file can serve a SimpleCache laptop and a Redis deployment.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import MutableMapping
from typing import Any

import redis
from redis.connection import parse_url

from .config import ConfigurationError

#: The Flask-Caching backends this app supports, each resolved to this app's subclass.
BACKENDS = {
    "NullCache": "alignwork.cache_backends.NullCache",
    "SimpleCache": "alignwork.cache_backends.SimpleCache",
    "RedisCache": "alignwork.redis_backends.RedisCache",
    "RedisSentinelCache": "alignwork.redis_backends.RedisSentinelCache",
    "RedisClusterCache": "alignwork.redis_backends.RedisClusterCache",
}
_MODULES = {"NullCache": "nullcache", "SimpleCache": "simplecache", "RedisCache": "rediscache",
            "RedisSentinelCache": "rediscache", "RedisClusterCache": "rediscache"}
REDIS_TYPES = ("RedisCache", "RedisSentinelCache", "RedisClusterCache")
# Flask-Caching backends that cannot hold this app's additions (a shared lock, key listing).
_UNSUPPORTED = {"FileSystemCache", "MemcachedCache", "SASLMemcachedCache", "SpreadSASLMemcachedCache",
                "UWSGICache"}
# The lower-case aliases of Flask-Caching 1.x, removed in 2.0.
_LEGACY = {"null": "NullCache", "simple": "SimpleCache", "redis": "RedisCache",
           "redissentinel": "RedisSentinelCache", "rediscluster": "RedisClusterCache"}

# The connection keys (where the cache is) each Redis type reads, as Flask-Caching reads them.
_CONNECTION_KEYS = {
    "RedisCache": {"CACHE_REDIS_URL", "CACHE_REDIS_HOST", "CACHE_REDIS_PORT", "CACHE_REDIS_DB",
                   "CACHE_REDIS_PASSWORD"},
    "RedisSentinelCache": {"CACHE_REDIS_SENTINELS", "CACHE_REDIS_SENTINEL_MASTER",
                           "CACHE_REDIS_SENTINEL_PASSWORD", "CACHE_REDIS_PASSWORD", "CACHE_REDIS_DB"},
    "RedisClusterCache": {"CACHE_REDIS_CLUSTER", "CACHE_REDIS_URL", "CACHE_REDIS_PASSWORD"},
}
CONNECTION_KEYS = frozenset().union(*_CONNECTION_KEYS.values())
TUNING_KEYS = frozenset({"CACHE_REDIS_SOCKET_TIMEOUT"})
# Why a type does not read a key, for the refusal.
_HINTS = {
    ("RedisSentinelCache", "CACHE_REDIS_URL"): "the sentinels name the master: set CACHE_REDIS_SENTINELS "
                                               "and CACHE_REDIS_SENTINEL_MASTER",
    ("RedisSentinelCache", "CACHE_REDIS_HOST"): "the sentinels name the master's address",
    ("RedisSentinelCache", "CACHE_REDIS_PORT"): "the sentinels name the master's address",
    ("RedisClusterCache", "CACHE_REDIS_HOST"): "name the nodes in CACHE_REDIS_CLUSTER (host:port,host:port)",
    ("RedisClusterCache", "CACHE_REDIS_PORT"): "name the nodes in CACHE_REDIS_CLUSTER (host:port,host:port)",
    ("RedisClusterCache", "CACHE_REDIS_DB"): "a Redis Cluster has only database 0",
}

# CACHE_OPTIONS (extra redis-py client arguments) this app sets itself.
_OWN_OPTIONS = {
    "socket_timeout": "set CACHE_REDIS_SOCKET_TIMEOUT instead",
    "socket_connect_timeout": "set CACHE_REDIS_SOCKET_TIMEOUT instead",
    "retry": "the back-off (CACHE_BACKOFF_SECONDS) is the retry policy",
    "retry_on_timeout": "the back-off (CACHE_BACKOFF_SECONDS) is the retry policy",
    "retry_on_error": "the back-off (CACHE_BACKOFF_SECONDS) is the retry policy",
    "decode_responses": "entries are pickled bytes",
    "host": "use CACHE_REDIS_HOST or CACHE_REDIS_URL", "port": "use CACHE_REDIS_PORT or CACHE_REDIS_URL",
    "db": "use CACHE_REDIS_DB", "password": "use CACHE_REDIS_PASSWORD",
}
_CLIENT_OPTIONS = frozenset(inspect.signature(redis.Redis.__init__).parameters) - {"self", "kwargs"}
_CLUSTER_OPTIONS = frozenset(inspect.signature(redis.RedisCluster.__init__).parameters) - {"self", "kwargs"}
_NODE = re.compile(r"^\[?([^\s\[\]]+?)\]?:(\d+)$")


def backend_name(cache_type: object) -> str:
    """The short name of a supported ``CACHE_TYPE`` given by short name or module path."""
    choices = ", ".join(BACKENDS)
    if cache_type is None or cache_type == "":
        # ALIGNWORK_CACHE_TYPE=null arrives as None (the environment is read as JSON), so the
        # refusal names what was written rather than Python's None.
        empty = "empty (null)" if cache_type is None else "empty"
        raise ConfigurationError(
            f"CACHE_TYPE is {empty}; use one of {choices} (NullCache switches caching off).")
    if not isinstance(cache_type, str):
        raise ConfigurationError(f"CACHE_TYPE must be the name of one of {choices}, not {cache_type!r}.")
    short = cache_type.rsplit(".", 1)[-1]
    if short in BACKENDS and cache_type in _accepted_paths(short):
        return short
    if cache_type in _LEGACY:
        raise ConfigurationError(
            f"CACHE_TYPE {cache_type!r} is a Flask-Caching 1 alias that Flask-Caching 2 no longer "
            f"accepts; use {_LEGACY[cache_type]!r}.")
    if short in _UNSUPPORTED:
        raise ConfigurationError(
            f"CACHE_TYPE {cache_type!r} is not supported: the stats cache needs a cache it can lock "
            f"and list keys in; use one of {choices}.")
    raise ConfigurationError(
        f"CACHE_TYPE must be one of {choices} (or its flask_caching.backends path), not {cache_type!r}.")


def _accepted_paths(short: str) -> set[str]:
    return {short, f"flask_caching.backends.{short}", f"flask_caching.backends.{_MODULES[short]}.{short}",
            BACKENDS[short]}


def configure_cache(config: MutableMapping[str, Any]) -> str:
    """Check every cache setting, normalise those read from the environment (JSON lists of lists
    become address tuples), and point ``CACHE_TYPE`` at this app's backend. Returns the short
    name of the backend. Raises ``ConfigurationError`` for the first setting that cannot work."""
    kind = backend_name(config.get("CACHE_TYPE"))
    _check_prefix(config.get("CACHE_KEY_PREFIX"))
    given = {key for key, value in config.items() if key.startswith("CACHE_REDIS_") and value is not None}
    for key in sorted(given - CONNECTION_KEYS - TUNING_KEYS):
        raise ConfigurationError(f"{key} is not a cache setting (a typo?); the Redis settings are "
                                 f"{', '.join(sorted(CONNECTION_KEYS | TUNING_KEYS))}.")
    options = config.get("CACHE_OPTIONS")
    if options is not None and not isinstance(options, dict):
        raise ConfigurationError(
            f"CACHE_OPTIONS must be a mapping of redis-py client arguments, not {options!r}.")
    if kind not in REDIS_TYPES:
        for key in sorted(given & CONNECTION_KEYS):
            raise ConfigurationError(
                f"{key} is only read by the Redis cache types, and CACHE_TYPE is {kind}.")
        if options:
            raise ConfigurationError(
                f"CACHE_OPTIONS is only read by the Redis cache types, and CACHE_TYPE is {kind}.")
    else:
        for key in sorted(given & CONNECTION_KEYS - _CONNECTION_KEYS[kind]):
            hint = _HINTS.get((kind, key), f"only {_reader_of(key)} reads it")
            raise ConfigurationError(f"{key} is not read by {kind}: {hint}.")
        _check_timeout(config.get("CACHE_REDIS_SOCKET_TIMEOUT"))
        _check_options(kind, options or {})
        {"RedisCache": _check_redis, "RedisSentinelCache": _check_sentinel,
         "RedisClusterCache": _check_cluster}[kind](config)
    config["CACHE_TYPE"] = BACKENDS[kind]
    return kind


def _reader_of(key: str) -> str:
    return " or ".join(kind for kind in REDIS_TYPES if key in _CONNECTION_KEYS[kind])


def _check_prefix(prefix: object) -> None:
    if prefix is None:
        return
    if not isinstance(prefix, str):
        raise ConfigurationError(f"CACHE_KEY_PREFIX must be a string, not {prefix!r}.")
    if "{" in prefix or "}" in prefix:
        raise ConfigurationError(
            f"CACHE_KEY_PREFIX must not contain '{{' or '}}' ({prefix!r}): keys carry the tenant as a "
            "Redis Cluster hash tag, and a brace in the prefix would replace it.")


def _check_timeout(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(
            f"CACHE_REDIS_SOCKET_TIMEOUT must be a number of seconds above 0, not {value!r}.")


def _check_options(kind: str, options: dict) -> None:
    allowed = _CLUSTER_OPTIONS | _CLIENT_OPTIONS if kind == "RedisClusterCache" else _CLIENT_OPTIONS
    for name in sorted(options):
        own = name
        if kind == "RedisSentinelCache" and name.startswith("sentinel_"):
            own = name[len("sentinel_"):]  # for the connections to the sentinels
        if own in _OWN_OPTIONS:
            raise ConfigurationError(f"CACHE_OPTIONS {name!r} is set by AlignWork: {_OWN_OPTIONS[own]}.")
        if own not in allowed:
            raise ConfigurationError(f"CACHE_OPTIONS {name!r} is not an argument of redis-py's client.")


def _text(config, key: str) -> str | None:
    """A string setting; an integer from the environment (JSON) is taken as its digits."""
    value = config.get(key)
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        config[key] = str(value)
        return config[key]
    raise ConfigurationError(f"{key} must be a string, not {value!r}.")


def _number(config, key: str, low: int, high: int | None = None) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
        bound = f"from {low} to {high}" if high else f"of at least {low}"
        raise ConfigurationError(f"{key} must be a whole number {bound}, not {value!r}.")
    return value


def _parse_url(key: str, url: object, schemes: tuple[str, ...]) -> dict:
    if not isinstance(url, str) or not url.startswith(tuple(s + "://" for s in schemes)):
        allowed = " or ".join(scheme + "://" for scheme in schemes)
        raise ConfigurationError(f"{key} must be a {allowed} URL, not {url!r}.")
    try:
        return parse_url(url)
    except ValueError as exc:
        raise ConfigurationError(f"{key} is not a valid Redis URL ({exc}).") from None


def _check_redis(config) -> None:
    """``CACHE_REDIS_URL``, or host, port, db and password. Keys next to a URL must agree with
    it; db and password apply when the URL does not state them (Flask-Caching drops the
    password there, which leaves the connection without AUTH)."""
    host = _text(config, "CACHE_REDIS_HOST")
    port = _number(config, "CACHE_REDIS_PORT", 1, 65535)
    db = _number(config, "CACHE_REDIS_DB", 0)
    password = _text(config, "CACHE_REDIS_PASSWORD")
    url = config.get("CACHE_REDIS_URL")
    if url is None:
        return
    parts = _parse_url("CACHE_REDIS_URL", url, ("redis", "rediss", "unix"))
    stated = {"CACHE_REDIS_HOST": (host, parts.get("host")),
              "CACHE_REDIS_PORT": (port, parts.get("port", 6379) if "host" in parts else None),
              "CACHE_REDIS_DB": (db, parts.get("db")),
              "CACHE_REDIS_PASSWORD": (password, parts.get("password"))}
    for key, (value, in_url) in stated.items():
        always_stated = key in ("CACHE_REDIS_HOST", "CACHE_REDIS_PORT")
        if value is not None and (in_url is not None or always_stated) and value != in_url:
            shown = "a different password" if key == "CACHE_REDIS_PASSWORD" else repr(in_url)
            raise ConfigurationError(
                f"{key} ({'…' if key == 'CACHE_REDIS_PASSWORD' else repr(value)}) contradicts "
                f"CACHE_REDIS_URL ({shown}); set one of them.")


def _check_sentinel(config) -> None:
    nodes = config.get("CACHE_REDIS_SENTINELS")
    example = 'e.g. [["10.0.0.5", 26379], ["10.0.0.6", 26379]]'
    if not nodes or isinstance(nodes, (str, bytes)) or not isinstance(nodes, (list, tuple)):
        raise ConfigurationError(f"CACHE_REDIS_SENTINELS must list the sentinels' addresses ({example}), "
                                 f"not {nodes!r}.")
    config["CACHE_REDIS_SENTINELS"] = [_address("CACHE_REDIS_SENTINELS", node, example) for node in nodes]
    if not _text(config, "CACHE_REDIS_SENTINEL_MASTER"):
        raise ConfigurationError("CACHE_REDIS_SENTINEL_MASTER must name the master the sentinels "
                                 "monitor (their `sentinel monitor <name> …` line).")
    _text(config, "CACHE_REDIS_SENTINEL_PASSWORD")
    _text(config, "CACHE_REDIS_PASSWORD")
    _number(config, "CACHE_REDIS_DB", 0)


def _check_cluster(config) -> None:
    nodes, url = config.get("CACHE_REDIS_CLUSTER"), config.get("CACHE_REDIS_URL")
    example = "e.g. 10.0.0.5:7000,10.0.0.6:7000,10.0.0.7:7000"
    if nodes is not None and url is not None:
        raise ConfigurationError(
            "CACHE_REDIS_CLUSTER and CACHE_REDIS_URL both name the cluster; set one of them.")
    if url is not None:
        parts = _parse_url("CACHE_REDIS_URL", url, ("redis", "rediss"))
        if parts.get("db", 0) != 0:
            raise ConfigurationError(
                f"CACHE_REDIS_URL names database {parts['db']}: a Redis Cluster has only database 0.")
    elif not isinstance(nodes, str) or not nodes.strip():
        raise ConfigurationError(f"RedisClusterCache needs CACHE_REDIS_CLUSTER, the nodes to start from "
                                 f"({example}), or CACHE_REDIS_URL; not {nodes!r}.")
    else:
        addresses = [_address("CACHE_REDIS_CLUSTER", node.strip(), example) for node in nodes.split(",")]
        config["CACHE_REDIS_CLUSTER"] = ",".join(f"{host}:{port}" for host, port in addresses)
    _text(config, "CACHE_REDIS_PASSWORD")


def _address(key: str, node: object, example: str) -> tuple[str, int]:
    """``(host, port)`` from a pair (a JSON list from the environment) or a ``host:port`` string."""
    if isinstance(node, str) and (match := _NODE.match(node)):
        host, port = match[1], int(match[2])
    elif isinstance(node, (list, tuple)) and len(node) == 2 and isinstance(node[0], str):
        host, port = node
    else:
        raise ConfigurationError(f"{key} holds {node!r}, which is not a host and port ({example}).")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536 or not host:
        raise ConfigurationError(f"{key} holds {node!r}, which is not a host and port ({example}).")
    return host, port
