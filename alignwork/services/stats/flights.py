"""One read-through per cold entry per process: the other requests for it here wait for that one.

The shared lock already makes one computation of an entry across every worker, but each of
its waiters polls the cache every ``LOCK_POLL_SECONDS`` until the entry appears. Under gevent a
worker holds every request that arrives at once, so a stampede of 200 polls put about 50
waiters in each worker, each sending a hundred cache reads a second (32 waiters on a 0.5 s
computation: 1,759 commands, against 122 with flights). Here the first request for an entry
(the leader) takes the shared path, and the others in this process wait on an event for its
answer, without touching the cache.

A flight is keyed by the app, the entry's key *and the generation its requests read*: a request
that read a newer generation than the leader (a write returned in between) must not be handed
counts that may predate that write, so it leads a flight of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    """One read-through under way: landed once its leader returned or raised."""

    __slots__ = ("landed", "result")

    def __init__(self) -> None:
        self.landed = threading.Event()  # a gevent event once gevent has patched threading
        self.result: T | None = None  # None: the leader failed; each follower goes on its own


class Flights(Generic[T]):
    """The flights under way in this process, by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flying: dict[Hashable, _Flight[T]] = {}

    def share(self, key: Hashable, lead: Callable[[], T], wait: float) -> tuple[T, bool] | None:
        """``lead()``'s result and True if this call led; the leader's result and False if one
        was under way and landed within ``wait`` seconds; None if it failed or took longer (the
        caller then goes its own way). The leader's exceptions are its own."""
        with self._lock:
            flight = self._flying.get(key)
            leading = flight is None
            if leading:
                flight = self._flying[key] = _Flight()
        if not leading:
            if flight.landed.wait(wait) and flight.result is not None:
                return flight.result, False
            return None
        try:
            flight.result = lead()
            return flight.result, True
        finally:
            with self._lock:
                del self._flying[key]
            flight.landed.set()

    def under_way(self) -> int:
        """How many flights are in the air: none once every leader has returned or raised."""
        with self._lock:
            return len(self._flying)
