"""The Redis Cluster backend: keys spread over several primaries by slot, so memory and load grow
by adding nodes. What it shares with the other Redis backends is in ``redis_backends.py``; here
is how a cluster differs: a client made on first use, one breaker per primary, a newly seen
primary left to settle before it is read, clears and listings over every primary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import redis
from flask_caching.backends.rediscache import RedisClusterCache as _RedisClusterCache
from redis.cluster import ClusterNode
from redis.exceptions import RedisClusterException

from .breaker import REDIS_ERRORS
from .fail_open import FailOpenMethods
from .redis_backends import ADVANCE_SCRIPT, RENEW_SCRIPT, RedisStatsBackend, client_settings

REPLICA_WAIT_MS = 100  # longest a cluster write waits for a replica to take its generation


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


class RedisClusterCache(FailOpenMethods, RedisStatsBackend, _RedisClusterCache):
    """Redis Cluster: keys spread over several primaries by slot. Every key of a tenant carries
    the tenant as a hash tag (``keys.py``), so a poll's keys share a slot and its read stays
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
        options = {**(config.get("CACHE_OPTIONS") or {}), **client_settings(config)}
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

    def _clear_all(self) -> bool:
        """Every primary's keys under the prefix (Flask-Caching's asks one node for KEYS, and
        leaves the other nodes' keys behind); failing open is ``FailOpenMethods.clear``'s."""
        self._delete_all("*")
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
        pipe.eval(ADVANCE_SCRIPT, 2, *keys, *arguments)
        pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)
        return pipe.execute()[0]

    def _renew(self, held: Mapping[str, Collection[str]], ms: int) -> None:
        """Key by key: each key's script runs on its slot's primary."""
        prefix = self._get_prefix()
        client = self._write_client
        for key, holders in held.items():
            client.eval(RENEW_SCRIPT, 1, prefix + key, ms, *holders)

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
        except REDIS_ERRORS:
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
            except REDIS_ERRORS as exc:
                found.append("down")
                failure = exc
            else:
                self._recover(node.name)  # the node answers: its slots need not wait out the back-off
        if failure is not None and set(found) == {"down"}:
            raise failure
        if failure is not None:  # learn a promotion now, not on a request's next failure
            self._write_client.client().nodes_manager.initialize(disconnect_startup_nodes_pools=False)
        return ",".join(sorted(found))
