"""The cache settings: which backend ``CACHE_TYPE`` names, and the refusal of settings that cannot work.

Flask-Caching reads its settings forgivingly: a key the chosen backend does not read is ignored,
a URL silently wins over host and port, a password next to a URL is dropped. A deployment that
believes it talks to its password-protected Redis on database 3 then caches in another one, and
nothing says so. Every cache setting is therefore checked here, once, before any backend is
built, and a setting that cannot work is refused with one line naming it
(``ConfigurationError``: gunicorn, ``wsgi.py`` and the ``flask`` command print that line and
stop). The backends' factories (``local.py``, ``redis_backends.py``, ``cluster.py``) then read
settings known to be complete and consistent. This module resolves the type and checks what
every type reads; ``redis_settings.py`` checks where a Redis type's server(s) are.

Connection keys (where the cache is) given for a type that does not read them are refused: they
say the operator believes the app uses a cache it does not. This app's tuning keys
(``CACHE_REDIS_SOCKET_TIMEOUT``, ``CACHE_BACKOFF_SECONDS``) have defaults and only matter with
Redis, so one settings file can serve a SimpleCache laptop and a Redis deployment.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from ..config import ConfigurationError
from .redis_settings import CONNECTION_KEYS, REDIS_TYPES, TUNING_KEYS, check_redis_settings

#: The Flask-Caching backends this app supports, each resolved to this app's subclass.
BACKENDS = {
    "NullCache": "alignwork.cache.local.NullCache",
    "SimpleCache": "alignwork.cache.local.SimpleCache",
    "RedisCache": "alignwork.cache.redis_backends.RedisCache",
    "RedisSentinelCache": "alignwork.cache.redis_backends.RedisSentinelCache",
    "RedisClusterCache": "alignwork.cache.cluster.RedisClusterCache",
}
_MODULES = {"NullCache": "nullcache", "SimpleCache": "simplecache", "RedisCache": "rediscache",
            "RedisSentinelCache": "rediscache", "RedisClusterCache": "rediscache"}
# Where earlier releases kept this app's backends (before ``alignwork/cache/``).
_MOVED_FROM = ("alignwork.cache_backends.", "alignwork.redis_backends.")
# Flask-Caching backends that cannot hold this app's additions (a shared lock, key listing).
_UNSUPPORTED = {"FileSystemCache", "MemcachedCache", "SASLMemcachedCache", "SpreadSASLMemcachedCache",
                "UWSGICache"}
# The lower-case aliases of Flask-Caching 1.x, removed in 2.0.
_LEGACY = {"null": "NullCache", "simple": "SimpleCache", "redis": "RedisCache",
           "redissentinel": "RedisSentinelCache", "rediscluster": "RedisClusterCache"}


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
    if short in BACKENDS and cache_type.startswith(_MOVED_FROM):
        raise ConfigurationError(
            f"CACHE_TYPE {cache_type!r} names a module that has moved; use {BACKENDS[short]!r} "
            f"(or {short!r}).")
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
        check_redis_settings(kind, config, given, options or {})
    config["CACHE_TYPE"] = BACKENDS[kind]
    return kind


def _check_prefix(prefix: object) -> None:
    if prefix is None:
        return
    if not isinstance(prefix, str):
        raise ConfigurationError(f"CACHE_KEY_PREFIX must be a string, not {prefix!r}.")
    if "{" in prefix or "}" in prefix:
        raise ConfigurationError(
            f"CACHE_KEY_PREFIX must not contain '{{' or '}}' ({prefix!r}): keys carry the tenant as a "
            "Redis Cluster hash tag, and a brace in the prefix would replace it.")
