"""Where a Redis cache type's server(s) are: the connection keys each type reads, the redis-py
client arguments this app leaves to ``CACHE_OPTIONS``, and the refusal of addresses, URLs and
numbers that cannot work (``settings.py`` resolves the type and calls ``check_redis_settings``).
"""

from __future__ import annotations

import inspect
import re

import redis
from redis.connection import parse_url

from ..config import ConfigurationError

# The connection keys (where the cache is) each Redis type reads, as Flask-Caching reads them.
_CONNECTION_KEYS = {
    "RedisCache": {"CACHE_REDIS_URL", "CACHE_REDIS_HOST", "CACHE_REDIS_PORT", "CACHE_REDIS_DB",
                   "CACHE_REDIS_PASSWORD"},
    "RedisSentinelCache": {"CACHE_REDIS_SENTINELS", "CACHE_REDIS_SENTINEL_MASTER",
                           "CACHE_REDIS_SENTINEL_PASSWORD", "CACHE_REDIS_PASSWORD", "CACHE_REDIS_DB"},
    "RedisClusterCache": {"CACHE_REDIS_CLUSTER", "CACHE_REDIS_URL", "CACHE_REDIS_PASSWORD"},
}
REDIS_TYPES = tuple(_CONNECTION_KEYS)
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


def check_redis_settings(kind: str, config, given: set[str], options: dict) -> None:
    """Refuse the first setting of the Redis type ``kind`` that cannot work; ``given``: the
    ``CACHE_REDIS_*`` keys set, ``options``: ``CACHE_OPTIONS``."""
    for key in sorted(given & CONNECTION_KEYS - _CONNECTION_KEYS[kind]):
        hint = _HINTS.get((kind, key), f"only {_reader_of(key)} reads it")
        raise ConfigurationError(f"{key} is not read by {kind}: {hint}.")
    _check_timeout(config.get("CACHE_REDIS_SOCKET_TIMEOUT"))
    _check_options(kind, options)
    {"RedisCache": _check_redis, "RedisSentinelCache": _check_sentinel,
     "RedisClusterCache": _check_cluster}[kind](config)


def _reader_of(key: str) -> str:
    return " or ".join(kind for kind in REDIS_TYPES if key in _CONNECTION_KEYS[kind])


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
