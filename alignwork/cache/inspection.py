"""Looking inside a Redis cache, for operators: keys by pattern with their TTLs, deleting by
pattern, the number of keys (``flask cache``, ``services/stats/operators.py``, metrics).

Inspection ignores the back-off and says plainly when Redis is away (``CacheUnavailable``): an
empty listing would be a lie. It SCANs every server holding a share of the keys, so it is for
operators and scrapes, never for requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .backend import CacheUnavailable
from .breaker import REDIS_ERRORS

_DELETE_BATCH = 1000


class RedisInspection:
    """Mixed into every Redis backend. Needs cachelib's ``_get_prefix()`` and ``_write_client``,
    and ``_node_clients()``: one client per server holding a share of the keys."""

    @contextmanager
    def _inspecting(self) -> Iterator[None]:
        try:
            yield
        except REDIS_ERRORS as exc:
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
