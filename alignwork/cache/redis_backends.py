"""The Redis backends for one server and for Sentinel, over what every Redis backend shares.

Every Redis backend (these two, and ``cluster.py``'s) is Flask-Caching's namesake with, mixed in
before it:

- ``FailOpenMethods`` (``fail_open.py``): Flask-Caching's own methods, failing open;
- ``RedisStatsBackend`` (here): the ``StatsBackend`` methods (``backend.py``), over the
  circuit breaker (``breaker.py``), the reconciliation gate (``reconciliation.py``) and
  operators' inspection (``inspection.py``).

Each class takes its settings as Flask-Caching's namesake reads them (``settings.py`` has
checked them).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis
import redis.sentinel
from cachelib.redis_base import BaseRedisCache
from flask_caching.backends.rediscache import RedisCache as _RedisCache
from flask_caching.backends.rediscache import RedisSentinelCache as _RedisSentinelCache
from redis.backoff import NoBackoff
from redis.exceptions import LockError
from redis.retry import Retry

from .. import metrics
from . import feed
from .backend import CacheUnavailable
from .feed import FeedRead
from .breaker import UNUSED, CircuitBreaker
from .fail_open import FailOpenMethods
from .inspection import RedisInspection
from .reconciliation import ReconcileGate

log = logging.getLogger(__name__)

# ``StatsBackend.advance`` in one step. KEYS: the generation, the tenant record. ARGV: epoch,
# version, the generation's TTL, the serialised record ('' deletes it), the record's TTL. The
# generation is stored raw (cachelib reads a value that is neither ``!``-pickled nor an integer
# back as bytes), so the script can compare it.
ADVANCE_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held then
  local epoch, version = string.match(held, '^(.+):(%d+)$')
  if epoch == ARGV[1] and tonumber(version) >= tonumber(ARGV[2]) then return held end
end
local generation = ARGV[1] .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], generation, 'EX', ARGV[3])
if ARGV[4] == '' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5]) end
return generation
"""

# ``StatsBackend.lease`` in one step. KEYS: the lease. ARGV: the holder, milliseconds (0: give it
# up). Returns the holder now ('' for none) and its milliseconds left.
LEASE_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return {held, redis.call('PTTL', KEYS[1])} end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {ARGV[1], tonumber(ARGV[2])}
end
if held then redis.call('DEL', KEYS[1]) end
return {'', 0}
"""

# ``StatsBackend.hold_slot`` in one step, on the server's clock (every worker's "now" is the
# same). KEYS: the places (a sorted set: holder -> when its place runs out, in ms). ARGV: the
# holder, the limit, milliseconds. Returns 1 if held, 0 if full.
SLOT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# ``StatsBackend.renew_slots`` for one key. ARGV: milliseconds, then the holders. A place lost
# with the cache's contents (a flush, a failover) is put back: its stream is open, so it counts.
RENEW_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


def client_settings(config) -> dict[str, Any]:
    """What every Redis connection of this app gets: fail fast, and one attempt, because the
    back-off is the retry policy (redis-py would otherwise retry with its own back-off, and a
    request would wait through it)."""
    return {
        "socket_timeout": config["CACHE_REDIS_SOCKET_TIMEOUT"],
        "socket_connect_timeout": config["CACHE_REDIS_SOCKET_TIMEOUT"],
        "retry": Retry(NoBackoff(), 0),
    }


class _ConnectHook:
    """redis-py's ``redis_connect_func``: the handshake of every new connection, then the
    server's run_id for the backend's reconciliation gate, so a restarted or promoted server
    that the pool reconnects to silently is noticed (``reconciliation.py``)."""

    def __init__(self) -> None:
        self.backend: RedisStatsBackend | None = None

    def __call__(self, connection: Any) -> None:
        connection.on_connect()
        gate = getattr(self.backend, "_gate", None)
        if gate is not None:
            connection.send_command("INFO", "server")
            info = connection.read_response()
            info = info.decode() if isinstance(info, bytes) else str(info)
            run_id = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                           if line.startswith("run_id:")), "")
            gate.connected(run_id)


class RedisStatsBackend(RedisInspection, CircuitBreaker):
    """The ``StatsBackend`` methods of every Redis variant, over the client(s) the variant's
    factory built. Mixed in before Flask-Caching's class, so its ``super()`` calls reach
    cachelib's plain Redis operations (not ``FailOpenMethods``, which comes before it).

    Variants differ only in how they reach the keys: ``_mget`` (one read of several keys) and
    ``_node_clients`` (the servers to scan when listing)."""

    shared = True
    #: Whether a worker waits, after an outage, for the server to be reconciled
    #: (``reconciliation.py``); a cluster's keys live on several servers, so not there.
    reconciles = True

    def __init__(self, client: Any, *, default_timeout: int, key_prefix: str, backoff_seconds: float,
                 ignore_delete_many_errors: bool = False):
        BaseRedisCache.__init__(self, client, default_timeout=default_timeout, key_prefix=key_prefix,
                                ignore_delete_many_errors=ignore_delete_many_errors)
        CircuitBreaker.__init__(self, backoff_seconds)
        self._gate = ReconcileGate(lambda: self._write_client, self._get_prefix, self._guard, UNUSED) \
            if self.reconciles else None

    @classmethod
    def _build(cls, client: Any, config, kwargs, hook: _ConnectHook | None = None) -> RedisStatsBackend:
        backend = cls(client, default_timeout=kwargs.get("default_timeout", 300),
                      key_prefix=config["CACHE_KEY_PREFIX"], backoff_seconds=config["CACHE_BACKOFF_SECONDS"],
                      ignore_delete_many_errors=kwargs.get("ignore_delete_many_errors", False))
        if hook is not None:
            hook.backend = backend
        return backend

    def _outage_ended(self) -> None:
        if self._gate is not None:
            self._gate.close()

    # -- how this variant reaches its keys ---------------------------------------------------

    def _mget(self, names: list[str]) -> list[Any]:
        return self._read_client.mget(names)

    def _node_clients(self) -> list[Any]:
        """One client per server holding a share of the keys (the only one, but for a cluster)."""
        return [self._write_client]

    def _read_many(self, *keys: str) -> list[Any]:
        prefix = self._get_prefix()
        return [self.serializer.loads(v) for v in self._mget([prefix + key for key in keys])]

    # -- StatsBackend ----------------------------------------------------------------------

    def fetch(self, *keys: str, ungated: bool = False) -> list[Any] | None:
        gated = self._gate is not None and not ungated
        if gated and not self._gate.is_open():
            return None
        found = self._guard(self._read_many, *keys, key=keys)
        if gated and not self._gate.is_open():
            return None  # the read reconnected, and found another server
        return None if found is UNUSED else found

    def reconcile_requested(self) -> frozenset[str] | None:
        return self._gate.requested() if self._gate is not None else None

    def mark_reconciled(self, identity: str, requests: frozenset[str]) -> None:
        if self._gate is not None:
            self._gate.mark(identity, requests)

    def store(self, key: str, value: Any, timeout: float) -> bool:
        return self._guard(super().set, key, value, timeout, key=key) is True

    def force_store(self, key: str, value: Any, timeout: float) -> bool:
        """One attempt even while backing off: an invalidation must not be skipped just because
        this worker saw a timeout that other workers did not."""
        return self._guard(super().set, key, value, timeout, ignore_backoff=True, key=key) is True

    def create(self, key: str, value: Any, timeout: float) -> bool | None:
        added = self._guard(super().add, key, value, timeout, key=key)
        return None if added is UNUSED else bool(added)

    def take(self, key: str) -> Any:
        raw = self._guard(self._getdel, key, key=key)
        if raw is UNUSED:
            raise CacheUnavailable("the cache could not be reached")
        return None if raw is None else self.serializer.loads(raw)

    def _getdel(self, key: str) -> Any:
        return self._write_client.getdel(self._get_prefix() + key)

    def advance(self, generation_key: str, record_key: str, epoch: str, version: int,
                record: Any, generation_ttl: float, record_ttl: float) -> str | None:
        prefix = self._get_prefix()
        arguments = [epoch, version, int(generation_ttl),
                     b"" if record is None else self.serializer.dumps(record), max(int(record_ttl), 1)]
        held = self._guard(self._run_advance, [prefix + generation_key, prefix + record_key], arguments,
                           ignore_backoff=True, key=generation_key)
        return None if held is UNUSED else held.decode("ascii")

    def _run_advance(self, keys: list[str], arguments: list) -> bytes:
        if getattr(self, "_advance_script", None) is None:
            self._advance_script = self._write_client.register_script(ADVANCE_SCRIPT)
        return self._advance_script(keys=keys, args=arguments)

    def lease(self, key: str, holder: str, seconds: float) -> tuple[str, float] | None:
        found = self._guard(self._write_client.eval, LEASE_SCRIPT, 1, self._get_prefix() + key, holder,
                            max(int(seconds * 1000), 0), ignore_backoff=True, key=key)
        if found is UNUSED:
            return None
        held, left = found
        return (held.decode() if isinstance(held, bytes) else held), max(int(left), 0) / 1000

    def hold_slot(self, key: str, holder: str, limit: int, seconds: float) -> bool | None:
        found = self._guard(self._write_client.eval, SLOT_SCRIPT, 1, self._get_prefix() + key, holder, limit,
                            max(int(seconds * 1000), 1), key=key)
        return None if found is UNUSED else found == 1

    def renew_slots(self, held: Mapping[str, Collection[str]], seconds: float) -> None:
        if held:
            self._guard(self._renew, held, max(int(seconds * 1000), 1), key=tuple(held))

    def _renew(self, held: Mapping[str, Collection[str]], ms: int) -> None:
        """Every key in one pipelined round trip (a cluster's keys lie on several servers:
        ``cluster.py`` renews key by key)."""
        prefix = self._get_prefix()
        pipe = self._write_client.pipeline(transaction=False)
        for key, holders in held.items():
            pipe.eval(RENEW_SCRIPT, 1, prefix + key, ms, *holders)
        pipe.execute()

    def release_slot(self, key: str, holder: str) -> None:
        self._guard(self._write_client.zrem, self._get_prefix() + key, holder, key=key)

    def announce(self, key: str, tenant_ids: Collection[str], keep: int, ttl: float) -> bool:
        return self._guard(feed.append, self._write_client, self._get_prefix() + key, tenant_ids, keep,
                           max(int(ttl), 1), ignore_backoff=True, key=key) is not UNUSED

    def read_feed(self, key: str, position: str | None, most: int) -> FeedRead | None:
        found = self._guard(feed.read, self._read_client, self._get_prefix() + key, position, most, key=key)
        return None if found is UNUSED else found

    def identity(self) -> str | None:
        found = self._guard(self._run_ids, ignore_backoff=True)
        return None if found is UNUSED else found

    def ask_reconciliation(self) -> None:
        if self._gate is not None:
            self._gate.is_open()

    def _run_ids(self) -> str:
        return ",".join(sorted(client.info("server")["run_id"] for client in self._node_clients()))

    @contextmanager
    def lock(self, key: str, timeout: float, wait: float) -> Iterator[bool]:
        """A Redis lock shared by every worker and host. ``timeout`` expires it if its holder
        dies; Redis failing counts as not acquired."""
        lock = self._guard(self._make_lock, key, timeout, wait, key=key)
        acquired = lock is not UNUSED and self._guard(lock.acquire, key=key) is True
        try:
            yield acquired
        finally:
            if acquired:
                self._guard(self._release, lock, key=key)

    @staticmethod
    def _release(lock: Any) -> None:
        """Release, or count a lock that vanished while held (FLUSHALL, eviction, a computation
        longer than its timeout): another computation may have run beside this one, which costs
        a computation, not correctness (entries are stored under the generation read before
        computing). redis-py raises ``LockNotOwnedError`` here outside the ``with`` form."""
        try:
            lock.release()
        except LockError as exc:
            metrics.CACHE_LOCKS_LOST.inc()
            log.debug("cache lock %s was gone when released (%s)", lock.name, exc)

    def _make_lock(self, key: str, timeout: float, wait: float) -> Any:
        return self._write_client.lock(
            self._get_prefix() + key, timeout=timeout, sleep=0.005,
            blocking=wait > 0, blocking_timeout=wait or None, raise_on_release_error=False,
        )


class RedisCache(FailOpenMethods, RedisStatsBackend, _RedisCache):
    """One Redis shared by every worker and host: ``CACHE_REDIS_URL``, or ``CACHE_REDIS_HOST``,
    ``_PORT``, ``_DB`` and ``_PASSWORD``, plus ``CACHE_OPTIONS`` for redis-py, as Flask-Caching
    reads them (except that a password next to a URL without one is used, not dropped)."""

    @classmethod
    def factory(cls, app, config, args, kwargs) -> RedisCache:
        hook = _ConnectHook()
        options = {**(config.get("CACHE_OPTIONS") or {}), **client_settings(config), "redis_connect_func": hook}
        if config.get("CACHE_REDIS_URL"):
            # URL parts win over these keyword arguments: they apply where the URL is silent.
            client = redis.Redis.from_url(
                config["CACHE_REDIS_URL"], db=config.get("CACHE_REDIS_DB") or 0,
                password=config.get("CACHE_REDIS_PASSWORD"), **options)
        else:
            client = redis.Redis(
                host=config.get("CACHE_REDIS_HOST") or "localhost",
                port=config.get("CACHE_REDIS_PORT") or 6379, db=config.get("CACHE_REDIS_DB") or 0,
                password=config.get("CACHE_REDIS_PASSWORD"), **options)
        return cls._build(client, config, kwargs, hook)


class RedisSentinelCache(FailOpenMethods, RedisStatsBackend, _RedisSentinelCache):
    """A master and its replicas watched by Sentinel: when the master fails, Sentinel promotes a
    replica and the client asks the sentinels where the master is now. Meanwhile the breaker
    answers from the database (BYPASS), and caching resumes on the new master by itself.

    Reads go to the master too (Flask-Caching reads from a replica): replication is
    asynchronous, so a replica may still hold the generation a write has just retired."""

    @classmethod
    def factory(cls, app, config, args, kwargs) -> RedisSentinelCache:
        options = config.get("CACHE_OPTIONS") or {}
        settings = client_settings(config)
        sentinel_options = {name[len("sentinel_"):]: value for name, value in options.items()
                            if name.startswith("sentinel_")}
        if config.get("CACHE_REDIS_SENTINEL_PASSWORD"):
            sentinel_options["password"] = config["CACHE_REDIS_SENTINEL_PASSWORD"]
        sentinel = redis.sentinel.Sentinel(
            [tuple(node) for node in config["CACHE_REDIS_SENTINELS"]],
            sentinel_kwargs={**sentinel_options, **settings},
            db=config.get("CACHE_REDIS_DB") or 0, password=config.get("CACHE_REDIS_PASSWORD"),
            **{name: value for name, value in options.items() if not name.startswith("sentinel_")},
            **settings,
        )
        hook = _ConnectHook()
        master = sentinel.master_for(config["CACHE_REDIS_SENTINEL_MASTER"], redis_connect_func=hook)
        return cls._build(master, config, kwargs, hook)
