"""The Redis backends: one server, Sentinel for failover, Cluster for size.

They share ``FailOpenRedis``: any Redis error, or a call made while backing off after one, is
reported as "not used" instead of raising, so a request answers BYPASS from the database.
Flask-Caching's own decorators do catch backend errors, but re-raise them when the app is in
debug mode and log a traceback per request otherwise; catching them here gives one code path,
one warning per outage and no timeout paid per request while Redis is away. Each class takes
its settings as Flask-Caching's namesake reads them (``cache_config.py`` has checked them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
import redis.sentinel
from cachelib.redis_base import BaseRedisCache
from flask_caching.backends.rediscache import RedisCache as _RedisCache
from flask_caching.backends.rediscache import RedisClusterCache as _RedisClusterCache
from flask_caching.backends.rediscache import RedisSentinelCache as _RedisSentinelCache
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from .cache_backends import CacheUnavailable
from .redis_fail_open import FailOpenMethods
from .redis_reconciliation import ReconcileGate

# ``StatsBackend.advance`` in one step. KEYS: the generation, the tenant record. ARGV: epoch,
# version, the generation's TTL, the serialised record ('' deletes it), the record's TTL. The
# generation is stored raw (cachelib reads a value that is neither ``!``-pickled nor an integer
# back as bytes), so the script can compare it.
_ADVANCE = """
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

log = logging.getLogger(__name__)

_UNUSED = object()  # what a guarded Redis call returns when Redis was not used
# What a Redis call can raise when the cache is away; a cluster client that cannot reach any
# node to learn the slot map raises RedisClusterException, which is not a RedisError.
_REDIS_ERRORS = (redis.RedisError, RedisClusterException)
_DELETE_BATCH = 1000
REPLICA_WAIT_MS = 100  # longest a cluster write waits for a replica to take its generation


def _client_settings(config) -> dict[str, Any]:
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
    that the pool reconnects to silently is noticed (``redis_reconciliation``)."""

    def __init__(self) -> None:
        self.backend: FailOpenRedis | None = None

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


class FailOpenRedis:
    """The fail-open behaviour and the ``StatsBackend`` methods of every Redis variant, over the
    client(s) the variant's factory built. Mixed in before Flask-Caching's class, so its
    ``super()`` calls reach cachelib's plain Redis operations.

    Variants differ only in how they reach the keys: ``_mget`` (one read of several keys) and
    ``_node_clients`` (the servers to scan when listing)."""

    shared = True
    #: Whether a worker waits, after an outage, for the server to be reconciled
    #: (``redis_reconciliation``); a cluster's keys live on several servers, so not there.
    reconciles = True

    _unused = _UNUSED

    def __init__(self, client: Any, *, default_timeout: int, key_prefix: str, backoff_seconds: float,
                 ignore_delete_many_errors: bool = False):
        BaseRedisCache.__init__(self, client, default_timeout=default_timeout, key_prefix=key_prefix,
                                ignore_delete_many_errors=ignore_delete_many_errors)
        self.backoff_seconds = backoff_seconds
        self._lost_deletes = 0  # deletes an outage swallowed, reported when it ends
        # Process-local circuit breaker, per shard (the server holding a key: one, but for a
        # cluster): no call to a shard until its monotonic time here.
        self._down_until: dict[str | None, float] = {}
        self._state_lock = threading.Lock()
        self._gate = ReconcileGate(lambda: self._write_client, self._get_prefix, self._guard, _UNUSED) \
            if self.reconciles else None

    @classmethod
    def _build(cls, client: Any, config, kwargs, hook: _ConnectHook | None = None) -> FailOpenRedis:
        backend = cls(client, default_timeout=kwargs.get("default_timeout", 300),
                      key_prefix=config["CACHE_KEY_PREFIX"], backoff_seconds=config["CACHE_BACKOFF_SECONDS"],
                      ignore_delete_many_errors=kwargs.get("ignore_delete_many_errors", False))
        if hook is not None:
            hook.backend = backend
        return backend

    # -- the circuit breaker -------------------------------------------------------------

    def _shard(self, keys: tuple[str, ...]) -> str | None:
        """Which server's breaker guards these keys (None: the one breaker of a single server,
        or of calls that span servers)."""
        return None

    def _guard(self, operation, *args: Any, ignore_backoff: bool = False, key: str | tuple = ()) -> Any:
        """``operation(*args)``, or ``_UNUSED`` while backing off from the shard holding ``key``
        (or keys) or when Redis fails."""
        shard = self._shard((key,) if isinstance(key, str) else key)
        if not ignore_backoff and self._down_until.get(shard, 0.0) > time.monotonic():
            return _UNUSED
        try:
            result = operation(*args)
        except _REDIS_ERRORS as exc:
            self._trip(shard, exc)
            return _UNUSED
        if self._down_until:
            self._recover(shard)
        return result

    def _trip(self, shard: str | None, exc: Exception) -> None:
        """One warning per outage: the first shard to fail says so; more shards failing while
        it lasts (a whole cluster away, node after node) are told at INFO."""
        with self._state_lock:
            first = shard not in self._down_until
            outage_begins = not self._down_until
            self._down_until[shard] = time.monotonic() + self.backoff_seconds
        if first:
            (log.warning if outage_begins else log.info)(
                "Redis cache unavailable%s (%s: %s); serving from the database and retrying every "
                "%.0f s.", f" on {shard}" if shard else "", type(exc).__name__, exc, self.backoff_seconds,
            )

    def _recover(self, shard: str | None) -> None:
        """Any call that succeeds ends the back-off: the listener's probe, which ignores it,
        brings requests back to Redis within its interval of Redis answering again."""
        with self._state_lock:
            was_out = self._down_until.pop(shard, None) is not None
            lost, self._lost_deletes = (self._lost_deletes, 0) if was_out and not self._down_until else (0, self._lost_deletes)
        if was_out and self._gate is not None:
            self._gate.close()
        if lost:
            log.warning("Redis cache reachable again%s; caching resumed. %d delete(s) made during the outage were "
                        "lost: those keys may still hold their old values until they expire.",
                        f" on {shard}" if shard else "", lost)
        elif was_out:
            log.info("Redis cache reachable again%s; caching resumed.", f" on {shard}" if shard else "")

    def _count_lost_deletes(self, count: int) -> None:
        with self._state_lock:
            self._lost_deletes += count

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
        return None if found is _UNUSED else found

    def reconcile_requested(self) -> int | None:
        return self._gate.requested() if self._gate is not None else None

    def mark_reconciled(self, identity: str, number: int) -> None:
        if self._gate is not None:
            self._gate.mark(identity, number)

    def store(self, key: str, value: Any, timeout: float) -> bool:
        return self._guard(super().set, key, value, timeout, key=key) is True

    def force_store(self, key: str, value: Any, timeout: float) -> bool:
        """One attempt even while backing off: an invalidation must not be skipped just because
        this worker saw a timeout that other workers did not."""
        return self._guard(super().set, key, value, timeout, ignore_backoff=True, key=key) is True

    def create(self, key: str, value: Any, timeout: float) -> bool | None:
        added = self._guard(super().add, key, value, timeout, key=key)
        return None if added is _UNUSED else bool(added)

    def advance(self, generation_key: str, record_key: str, epoch: str, version: int,
                record: tuple | None, generation_ttl: float, record_ttl: float) -> str | None:
        prefix = self._get_prefix()
        arguments = [epoch, version, int(generation_ttl),
                     b"" if record is None else self.serializer.dumps(record), max(int(record_ttl), 1)]
        held = self._guard(self._run_advance, [prefix + generation_key, prefix + record_key], arguments,
                           ignore_backoff=True, key=generation_key)
        return None if held is _UNUSED else held.decode("ascii")

    def _run_advance(self, keys: list[str], arguments: list) -> bytes:
        if getattr(self, "_advance_script", None) is None:
            self._advance_script = self._write_client.register_script(_ADVANCE)
        return self._advance_script(keys=keys, args=arguments)

    def identity(self) -> str | None:
        found = self._guard(self._run_ids, ignore_backoff=True)
        return None if found is _UNUSED else found

    def _run_ids(self) -> str:
        return ",".join(sorted(client.info("server")["run_id"] for client in self._node_clients()))

    @contextmanager
    def lock(self, key: str, timeout: float, wait: float) -> Iterator[bool]:
        """A Redis lock shared by every worker and host. ``timeout`` expires it if its holder
        dies; Redis failing counts as not acquired."""
        lock = self._guard(self._make_lock, key, timeout, wait, key=key)
        acquired = lock is not _UNUSED and self._guard(lock.acquire, key=key) is True
        try:
            yield acquired
        finally:
            if acquired:
                self._guard(lock.release, key=key)

    def _make_lock(self, key: str, timeout: float, wait: float) -> Any:
        return self._write_client.lock(
            self._get_prefix() + key, timeout=timeout, sleep=0.005,
            blocking=wait > 0, blocking_timeout=wait or None, raise_on_release_error=False,
        )

    # Inspection is for operators: it ignores the back-off and says plainly when Redis is away.

    @contextmanager
    def _inspecting(self) -> Iterator[None]:
        try:
            yield
        except _REDIS_ERRORS as exc:
            raise CacheUnavailable(f"Redis unreachable: {type(exc).__name__}: {exc}") from exc

    def _names_by_node(self, pattern: str) -> list[tuple[Any, list[bytes]]]:
        match = self._get_prefix() + pattern
        return [(client, list(client.scan_iter(match=match, count=1000))) for client in self._node_clients()]

    def keys_with_ttl(self, pattern: str) -> list[tuple[str, float | None]]:
        prefix = self._get_prefix()
        found = []
        with self._inspecting():
            for client, names in self._names_by_node(pattern):
                pipe = client.pipeline(transaction=False)
                for name in names:
                    pipe.pttl(name)
                found += zip(names, pipe.execute() if names else [])
        return sorted(
            (name.decode()[len(prefix):], None if pttl == -1 else pttl / 1000)
            for name, pttl in found if pttl != -2
        )

    def stored_key(self, key: str) -> str:
        return self._get_prefix() + key

    def delete_matching(self, pattern: str) -> int:
        """Deletes in batches (and, on a cluster, one DEL per slot: redis-py splits them)."""
        with self._inspecting():
            return self._delete_all(pattern)

    def _delete_all(self, pattern: str) -> int:
        names = [name for _, node_names in self._names_by_node(pattern) for name in node_names]
        for start in range(0, len(names), _DELETE_BATCH):
            self._write_client.delete(*names[start:start + _DELETE_BATCH])
        return len(names)

    def size(self) -> int:
        """One SCAN of the keyspace (of each node): for operators and scrapes, not requests."""
        with self._inspecting():
            return sum(len(names) for _, names in self._names_by_node("*"))


class RedisCache(FailOpenMethods, FailOpenRedis, _RedisCache):
    """One Redis shared by every worker and host: ``CACHE_REDIS_URL``, or ``CACHE_REDIS_HOST``,
    ``_PORT``, ``_DB`` and ``_PASSWORD``, plus ``CACHE_OPTIONS`` for redis-py, as Flask-Caching
    reads them (except that a password next to a URL without one is used, not dropped)."""

    @classmethod
    def factory(cls, app, config, args, kwargs) -> RedisCache:
        hook = _ConnectHook()
        options = {**(config.get("CACHE_OPTIONS") or {}), **_client_settings(config), "redis_connect_func": hook}
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


class RedisSentinelCache(FailOpenMethods, FailOpenRedis, _RedisSentinelCache):
    """A master and its replicas watched by Sentinel: when the master fails, Sentinel promotes a
    replica and the client asks the sentinels where the master is now. Meanwhile the breaker
    answers from the database (BYPASS), and caching resumes on the new master by itself.

    Reads go to the master too (Flask-Caching reads from a replica): replication is
    asynchronous, so a replica may still hold the generation a write has just retired."""

    @classmethod
    def factory(cls, app, config, args, kwargs) -> RedisSentinelCache:
        options = config.get("CACHE_OPTIONS") or {}
        settings = _client_settings(config)
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


class _LazyCluster:
    """The ``RedisCluster`` client, made on first use. Its constructor asks the nodes for the
    slot map, and a cluster that is away while the app starts must cost BYPASS answers (the
    breaker), not a service that refuses to start."""

    def __init__(self, connect: Callable[[], redis.RedisCluster]):
        self._connect = connect
        self._client: redis.RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def made(self) -> redis.RedisCluster | None:
        """The client if it has been made (without making it)."""
        return self._client

    def client(self) -> redis.RedisCluster:
        """(Not ``get``: that name is redis-py's GET, reached through ``__getattr__``.)"""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client(), name)


class RedisClusterCache(FailOpenMethods, FailOpenRedis, _RedisClusterCache):
    """Redis Cluster: keys spread over several primaries by slot. Every key of a tenant carries
    the tenant as a hash tag (``cache_keys``), so a poll's keys share a slot and its read stays
    one MGET to one node; listing visits every primary, and deletes go one DEL per slot."""

    reconciles = False
    #: A primary this process starts reading from after start-up (a promoted replica) or again
    #: after backing off from it is not read for this long: two listener ticks, in which a
    #: listener sees the new identity and catches that node up (a cluster has no
    #: reconciliation marker: its keys live on several servers).
    SETTLE_SECONDS = 1.0

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._settling: dict[str, float] = {}  # node -> monotonic time until which it settles
        self._known: set[str] | None = None  # the primaries serving slots when first seen

    def fetch(self, *keys: str, ungated: bool = False) -> list[Any] | None:
        if not ungated and self._unsettled(self._shard(keys)):
            return None
        return super().fetch(*keys, ungated=ungated)

    def _unsettled(self, shard: str | None) -> bool:
        if shard is None:
            return False
        now = time.monotonic()
        if self._known is None:  # every primary serving slots at the first read is trusted
            client = self._write_client.made
            self._known = {node.name for node in client.get_primaries()} if client is not None else set()
        if shard not in self._known:
            self._known.add(shard)
            self._settling[shard] = now + self.SETTLE_SECONDS
        return self._settling.get(shard, 0.0) > now

    def _recover(self, shard: str | None) -> None:
        if shard is not None and shard in self._down_until:
            self._settling[shard] = time.monotonic() + self.SETTLE_SECONDS
        super()._recover(shard)

    @classmethod
    def factory(cls, app, config, args, kwargs) -> RedisClusterCache:
        options = {**(config.get("CACHE_OPTIONS") or {}), **_client_settings(config)}
        if config.get("CACHE_REDIS_PASSWORD"):
            options["password"] = config["CACHE_REDIS_PASSWORD"]
        url = config.get("CACHE_REDIS_URL")
        listed = (config.get("CACHE_REDIS_CLUSTER") or "").split(",")
        nodes = [ClusterNode(host, int(port))
                 for host, port in (node.rsplit(":", 1) for node in listed if node)]

        def connect() -> redis.RedisCluster:
            if url:
                return redis.RedisCluster.from_url(url, **options)
            return redis.RedisCluster(startup_nodes=nodes, **options)

        return cls._build(_LazyCluster(connect), config, kwargs)

    def clear(self) -> bool:
        """Every primary's keys under the prefix (Flask-Caching's asks one node for KEYS, and
        leaves the other nodes' keys behind)."""
        cleared = self._guard(self._delete_all, "*")
        if cleared is _UNUSED:
            self._count_lost_deletes(1)
            return False
        return True

    def _mget(self, names: list[str]) -> list[Any]:
        """One MGET when the keys share a slot (a poll's keys do); else one per slot, which
        is what an operator's listing across tenants needs. redis-py refuses a cross-slot MGET
        before sending anything, so trying costs the hot path nothing."""
        client = self._read_client.client()
        try:
            return client.mget(names)
        except RedisClusterException:
            if len({client.keyslot(name) for name in names}) == 1:
                raise  # not a cross-slot read: a real failure, for the breaker
            return client.mget_nonatomic(names)

    def _node_clients(self) -> list[Any]:
        client = self._write_client.client()
        return [client.get_redis_connection(node) for node in client.get_primaries()]

    def _run_advance(self, keys: list[str], arguments: list) -> bytes:
        """The script on the slot's primary, then ``WAIT`` for one replica when the slot has
        one, on the same connection, before the write answers: a replica promoted after its
        primary dies then holds every generation a write had answered for. (No reconciliation
        gate closes that window on a cluster; a replica that does not answer within
        ``REPLICA_WAIT_MS`` leaves it to the listener's catch-up.)"""
        cluster = self._write_client.client()
        owners = cluster.nodes_manager.slots_cache.get(cluster.keyslot(keys[0])) or []
        if len(owners) < 2:
            return super()._run_advance(keys, arguments)
        pipe = cluster.get_redis_connection(owners[0]).pipeline(transaction=False)
        pipe.eval(_ADVANCE, 2, *keys, *arguments)
        pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)
        return pipe.execute()[0]

    def _shard(self, keys: tuple[str, ...]) -> str | None:
        """The primary holding the keys' slot: one node failing backs off only its own slots,
        and the tenants on the other nodes keep being served from the cache. (A tenant's keys
        share a slot; a read across nodes, an operator's, gets the cluster-wide breaker.)"""
        client = self._write_client.made
        if not keys or client is None:
            return None
        prefix = self._get_prefix()
        try:
            nodes = {client.nodes_manager.get_node_from_slot(client.keyslot(prefix + key)).name for key in keys}
        except _REDIS_ERRORS:
            return None
        return nodes.pop() if len(nodes) == 1 else None

    def _run_ids(self) -> str:
        """Each primary's run_id, or ``down`` for one that does not answer (the listener then
        sees a new identity when it is back); raises only when none answers."""
        cluster = self._write_client.client()
        found, failure = [], None
        for node in cluster.get_primaries():
            try:
                found.append(cluster.get_redis_connection(node).info("server")["run_id"])
            except _REDIS_ERRORS as exc:
                found.append("down")
                failure = exc
            else:
                self._recover(node.name)  # the node answers: its slots need not wait out the back-off
        if failure is not None and set(found) == {"down"}:
            raise failure
        if failure is not None:  # learn a promotion now, not on a request's next failure
            self._write_client.client().nodes_manager.initialize(disconnect_startup_nodes_pools=False)
        return ",".join(sorted(found))
