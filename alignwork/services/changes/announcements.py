"""Who wants to hear that tenants changed: a per-app list of callbacks that ``generations.apply``
calls with the tenants whose generation it brought to the cache, and when each change was made.

The change side announces; it does not know who listens. The stats side registers its listener
(``stats/stream_hub.py``, which wakes live dashboards) when the app is built, so nothing here
imports the stats code, and a new listener needs no edit on this side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flask import Flask, current_app

log = logging.getLogger(__name__)

#: Called with {tenant id: when its change was made (epoch seconds, the database's clock)}.
Listener = Callable[[Mapping[str, float]], None]
_KEY = "alignwork.change_listeners"


def register(app: Flask, listener: Listener) -> None:
    """Hear every change ``app`` brings to its cache, from this process (its own commits, its
    listener's ticks)."""
    app.extensions.setdefault(_KEY, []).append(listener)


def announce(changed: Mapping[str, float]) -> None:
    """Tell the registered listeners; a listener's failure is logged, never the writer's."""
    if not changed:
        return
    for listener in current_app.extensions.get(_KEY, ()):
        try:
            listener(changed)
        except Exception:  # noqa: BLE001 - a listener must not fail the write that announced
            log.exception("a change listener failed")
