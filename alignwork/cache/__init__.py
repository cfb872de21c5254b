"""The cache's machinery, in one room: what ``CACHE_TYPE`` may name and the refusal of settings
that cannot work, the names of the keys, and the backends ``cache.cache`` is built from.

- ``settings.py``, ``redis_settings.py``: ``CACHE_TYPE`` resolved to a backend here, and every
  cache setting checked once at start-up (the Redis connection keys in their own module);
- ``keys.py``: the name of everything kept in the cache (``{tenant}`` hash tags);
- ``backend.py``: ``StatsBackend``, what the stats cache asks of a backend beyond
  Flask-Caching's methods, and the generation format;
- ``local.py``: ``NullCache`` and ``SimpleCache``;
- ``redis_backends.py``: ``RedisCache``, ``RedisSentinelCache`` and the ``StatsBackend`` methods
  every Redis backend shares; ``cluster.py``: ``RedisClusterCache``;
- ``breaker.py`` (the circuit breaker: one warning per outage, lost deletes counted),
  ``fail_open.py`` (Flask-Caching's own methods failing open), ``inspection.py`` (listing and
  deleting by pattern, for operators), ``reconciliation.py`` (after an outage, wait for the
  listener's catch-up before serving): the pieces the Redis backends are mixed from.

What the cache holds and when it is fresh is the services' business
(``services/stats/answer.py``, ``generations.py``, ``changes/session_hooks.py``, ``listener.py``, ...),
which import from here. Nothing here imports a service, a blueprint or a command: the backends
know keys and servers, not tenants' stats or requests (``tests/test_layering.py`` checks it).
"""
