"""Flask-Caching's own methods on the Redis backends, failing open.

Users call ``cache.get``, ``cache.set_many``, ``@cache.memoize`` and friends on the app's
``cache``, whatever ``CACHE_TYPE`` says. Flask-Caching's Redis classes raise on a Redis error;
its decorators catch that, but log a traceback per call and re-raise in debug mode. Here every
method answers its documented failure value instead (the same as a miss, or "not stored"), with
the one warning per outage of the backend's circuit breaker (``_guard``), and no timeout paid per
call while backing off:

==================================  ==========================
``get``, ``inc``, ``dec``           ``None``
``set``, ``add``, ``delete``,       ``False``
``has``, ``clear``
``get_many`` / ``get_dict``         ``None`` for every key
``set_many``, ``delete_many``,      ``[]``
``unlink``
==================================  ==========================

A delete that an outage swallows leaves the old value in Redis, to be read again once Redis is
back: such deletes are counted, and the breaker reports the count when the outage ends.

Mixed in before the backend's ``RedisStatsBackend`` (``redis_backends.py``), so the ``super()``
calls here reach Flask-Caching's and cachelib's plain operations, and ``RedisStatsBackend``'s
``store``, ``force_store`` and ``create`` reach them directly too, not these wrappers (an
invalidation's ``force_store`` ignores the back-off).
"""

from __future__ import annotations

from typing import Any


class FailOpenMethods:
    """Needs ``_guard(operation, *args, key=...)`` and its ``UNUSED`` marker (``_unused``), and
    ``_count_lost_deletes(n)``, from the breaker (``breaker.py``)."""

    _unused: object

    def _fail_open(self, default: Any, operation, *args: Any, key: str | tuple = ()) -> Any:
        result = self._guard(operation, *args, key=key)
        return default if result is self._unused else result

    def get(self, key: str) -> Any:
        return self._fail_open(None, super().get, key, key=key)

    def get_many(self, *keys: str) -> list[Any]:
        if not keys:
            return []
        # Ungated: a user's values are read as Flask-Caching reads them, also while the stats
        # wait for a catch-up after an outage (memoize reads its versions here).
        return self.fetch(*keys, ungated=True) or [None] * len(keys)

    def set(self, key: str, value: Any, timeout: Any = None) -> bool:
        return self._fail_open(False, super().set, key, value, timeout, key=key) is True

    def add(self, key: str, value: Any, timeout: Any = None) -> bool:
        return self._fail_open(False, super().add, key, value, timeout, key=key) is True

    def set_many(self, mapping: dict[str, Any], timeout: Any = None) -> list[Any]:
        if not mapping:
            return []
        return self._fail_open([], super().set_many, mapping, timeout, key=tuple(mapping))

    def has(self, key: str) -> bool:
        return self._fail_open(False, super().has, key, key=key) is True

    def inc(self, key: str, delta: int = 1) -> Any:
        return self._fail_open(None, super().inc, key, delta, key=key)

    def dec(self, key: str, delta: int = 1) -> Any:
        return self._fail_open(None, super().dec, key, delta, key=key)

    def delete(self, key: str) -> bool:
        deleted = self._guard(super().delete, key, key=key)
        if deleted is self._unused:
            self._count_lost_deletes(1)
            return False
        return deleted is True

    def delete_many(self, *keys: str) -> list[Any]:
        """Flask-Caching's ``CACHE_IGNORE_ERRORS`` holds while Redis answers (a key still there
        after the delete raises unless it is set); during an outage, failing open wins."""
        return self._deleting(super().delete_many, keys)

    def unlink(self, *keys: str) -> Any:
        """As Flask-Caching's: Redis's count of keys removed (``[]`` when Redis failed)."""
        return self._deleting(super().unlink, keys)

    def _deleting(self, operation, keys: tuple[str, ...]) -> list[Any]:
        if not keys:
            return []
        deleted = self._guard(operation, *keys, key=keys)
        if deleted is self._unused:
            self._count_lost_deletes(len(keys))
            return []
        return deleted

    def clear(self) -> bool:
        cleared = self._guard(self._clear_all)
        if cleared is self._unused:
            self._count_lost_deletes(1)
            return False
        return bool(cleared)

    def _clear_all(self) -> bool:
        """Flask-Caching's ``clear``; a backend whose keys that would not all reach overrides it."""
        return super().clear()

