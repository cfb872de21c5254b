"""Threads that run while a ``with`` block does: the pollers and writers of the failure tests,
and the benchmark's polls (it imports nothing from pytest, so ``bench`` uses it too)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Running:
    """Runs each loop in a thread of its own from ``__enter__`` until the block ends; a loop
    watches ``self._stop`` (an Event) and returns once it is set."""

    join_seconds = 30  # how long the block's end waits for each thread

    def __init__(self, *loops: Callable[[], None]):
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=loop, daemon=True) for loop in loops]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.join_seconds)
