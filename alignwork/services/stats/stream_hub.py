"""Live dashboards: the process-local hub that wakes a tenant's open streams when its numbers
may have changed, and hands each the body from the cache.

There is no broker connection per client. A process learns of changes once, from what it already
has: ``changes.announcements`` (every generation this process brings to the cache: its own
commits, its listener's ticks), and, on a shared cache, one look every ``STREAM_WATCH_INTERVAL``
at the generations of the tenants it has streams for (one ``MGET`` per thousand tenants), which
brings changes other processes applied. Only the changed tenants' streams wake.

Streams of one tenant and zone share a ``Group``: a wake makes the group read once (the same
``answer.read``/``answer.answer`` a poll makes: a HIT, or one computation under the key's lock),
so 1,000 screens of one clinic cost one read, not 1,000. A group also wakes at its zone's local
midnight. No database session is kept between reads (``db.session.remove()``).

The hub knows nothing of HTTP: a stream is an iterator of ``Step`` values that the blueprint
turns into server-sent events. The hub is named process-local state: one per app, in
``app.extensions`` (docs/architecture.md, live dashboards).
"""

from __future__ import annotations

import enum
import logging
import resource
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from flask import Flask, current_app

from ... import metrics
from ...cache.backend import stats_backend
from ...cache.keys import generation_key
from ..changes import announcements, generations
from .stream_groups import Group, State

log = logging.getLogger(__name__)
_KEY = "alignwork.stream_hub"
WATCH_BATCH = 1000
FILES_KEPT_FREE = 256  # descriptors left for polls, the database and the cache past the cap


class Ending(str, enum.Enum):
    GONE = "gone"  # the tenant was deleted
    LIFETIME = "lifetime"  # STREAM_MAX_SECONDS or the token's expiry
    SHUTDOWN = "shutdown"  # the worker stops (graceful stop, HUP)


@dataclass(frozen=True)
class Step:
    """What a stream does next: send ``state`` (``news``: its body differs from the last one
    sent; else only the tenant record may have changed), a keep-alive, or end."""

    state: State | None = None
    news: bool = False
    changed_at: float | None = None  # when the change was made (database clock), if known
    ending: Ending | None = None


class Refused(Exception):
    """A stream the hub will not open: ``status`` 429 (this tenant's cap) or 503 (this process's
    cap, or a server that cannot hold streams), and when to try again."""

    def __init__(self, message: str, status: int, retry_after: int):
        super().__init__(message)
        self.message, self.status, self.retry_after = message, status, retry_after


def streams_possible() -> bool:
    """Whether this process serves connections on greenlets (gunicorn's gevent worker patches
    the standard library): an open stream then costs a greenlet, not a thread or a process."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


@dataclass(eq=False)
class Subscription:
    """One open stream. Iterate ``steps()``; ``close()`` when done (the blueprint's generator
    does, however the response ends)."""

    hub: StreamHub
    group: Group
    ends_at: float
    keepalive: float
    last_etag: str | None = None
    flag: threading.Event = field(default_factory=threading.Event)
    closed: bool = False

    def first(self) -> Step:
        """The stream's opening: the current state (``news`` unless the client's Last-Event-ID
        names it already), or the end if the tenant is gone."""
        state = self.group.read()
        if state is None:
            return Step(ending=Ending.GONE)
        news = state.etag != self.last_etag
        self.last_etag = state.etag
        return Step(state, news)

    def steps(self) -> Iterator[Step]:
        next_keepalive = time.time() + self.keepalive
        while True:
            now = time.time()
            wait = min(next_keepalive, self.ends_at, self.group.midnight) - now
            woke = self.flag.wait(max(wait, 0.0))
            self.flag.clear()
            now = time.time()
            if self.hub.stopping:
                yield Step(ending=Ending.SHUTDOWN)
                return
            if now >= self.ends_at:
                yield Step(ending=Ending.LIFETIME)
                return
            if woke or now >= self.group.midnight:
                state = self.group.read()
                if state is None:
                    yield Step(ending=Ending.GONE)
                    return
                news = state.etag != self.last_etag
                self.last_etag = state.etag
                yield Step(state, news, self.group.changed_at if news else None)
            elif now >= next_keepalive:
                next_keepalive = now + self.keepalive
                yield Step()

    def delivered(self, step: Step) -> None:
        """Count an event the blueprint sent, and its lag from the change, when known."""
        metrics.record_stream_event(time.time() - step.changed_at if step.changed_at else None)

    def close(self) -> None:
        self.hub._close(self)


class StreamHub:
    """Every open stream of one app in this process, grouped by tenant and zone."""

    def __init__(self, app: Flask):
        self.app = app
        self.stopping = False
        self._groups: dict[tuple[str, str], Group] = {}
        self._per_tenant: dict[str, int] = {}
        self._open = 0
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._seen: dict[str, object] = {}

    def capacity(self) -> int:
        """``STREAMS_PER_PROCESS``, cut to what the open-files limit leaves room for."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = int(self.app.config["STREAMS_PER_PROCESS"])
        return cap if soft == resource.RLIM_INFINITY else max(0, min(cap, soft - FILES_KEPT_FREE))

    def open(self, tenant_id: str, zone: ZoneInfo, ends_at: float, last_etag: str | None) -> Subscription:
        """A new stream, or ``Refused`` past a cap."""
        config = self.app.config
        retry = int(config["STREAM_RETRY_SECONDS"]) * 2
        with self._lock:
            if self.stopping:
                raise Refused("This worker is stopping; reconnect.", 503, 1)
            if self._open >= self.capacity():
                metrics.STREAMS_REFUSED.labels(reason="process").inc()
                raise Refused("This server holds as many streams as it can; poll instead.", 503, retry)
            if self._per_tenant.get(tenant_id, 0) >= int(config["STREAMS_PER_TENANT"]):
                metrics.STREAMS_REFUSED.labels(reason="tenant").inc()
                raise Refused("Too many open streams for this tenant; poll instead.", 429, retry)
            group = self._groups.get((tenant_id, zone.key))
            if group is None:
                group = self._groups[(tenant_id, zone.key)] = Group(tenant_id, zone)
            subscription = Subscription(self, group, ends_at, float(config["STREAM_KEEPALIVE_SECONDS"]),
                                        last_etag)
            group.subscriptions.add(subscription)
            self._per_tenant[tenant_id] = self._per_tenant.get(tenant_id, 0) + 1
            self._open += 1
            metrics.STREAMS_OPEN.inc()
            if self._watcher is None and stats_backend().shared:
                self._watcher = threading.Thread(target=self._watch, name="stream-watcher", daemon=True)
                self._watcher.start()
        return subscription

    def _close(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription.closed:
                return
            subscription.closed = True
            group = subscription.group
            group.subscriptions.discard(subscription)
            if not group.subscriptions:
                self._groups.pop((group.tenant_id, group.zone.key), None)
            left = self._per_tenant[group.tenant_id] - 1
            if left:
                self._per_tenant[group.tenant_id] = left
            else:
                del self._per_tenant[group.tenant_id]
                self._seen.pop(group.tenant_id, None)
            self._open -= 1
            metrics.STREAMS_OPEN.dec()

    @property
    def open_streams(self) -> int:
        return self._open

    def wake(self, changed: Mapping[str, float | None]) -> None:
        """Wake the streams of these tenants (the others sleep on)."""
        with self._lock:
            groups = [group for group in self._groups.values() if group.tenant_id in changed]
        for group in groups:
            group.wake(changed[group.tenant_id])

    def stop(self) -> None:
        """End every stream (the worker stops): each finishes its response cleanly."""
        with self._lock:
            self.stopping = True
            groups = list(self._groups.values())
        for group in groups:
            group.wake()

    def _watch(self) -> None:
        """On a shared cache: the generations of the tenants with streams here, every
        ``STREAM_WATCH_INTERVAL``, for the changes other processes brought to the cache."""
        interval = float(self.app.config["STREAM_WATCH_INTERVAL"])
        while not self.stopping:
            try:
                with self.app.app_context():
                    self._look()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failure
                log.exception("stream watcher failed; looking again")
            time.sleep(interval)

    def _look(self) -> None:
        """Wake a tenant's groups when its generation moved since the watcher last saw it, and
        at first sight if it is not the one its groups read under (it moved in between)."""
        with self._lock:
            read_under: dict[str, set] = {}
            for group in self._groups.values():
                read_under.setdefault(group.tenant_id, set()).add(group.generation)
        tenant_ids = sorted(read_under)
        changed = {}
        for start in range(0, len(tenant_ids), WATCH_BATCH):
            batch = tenant_ids[start:start + WATCH_BATCH]
            held = stats_backend().fetch(*(generation_key(t) for t in batch), ungated=True)
            for tenant_id, value in zip(batch, held or ()):
                generation = generations.current(value)
                if generation is None or generation == self._seen.get(tenant_id):
                    continue
                self._seen[tenant_id] = generation
                if read_under[tenant_id] != {generation}:
                    changed[tenant_id] = None
        if changed:
            self.wake(changed)


def hub() -> StreamHub:
    return current_app.extensions[_KEY]


def init_app(app: Flask) -> None:
    """The app's hub, woken by every change the app brings to its cache."""
    app.extensions[_KEY] = created = StreamHub(app)
    announcements.register(app, created.wake)


def stop(app: Flask) -> None:
    """End ``app``'s streams in this process (gunicorn.conf.py, when the worker stops)."""
    found = app.extensions.get(_KEY)
    if found is not None:
        found.stop()
