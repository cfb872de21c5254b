"""Live dashboards: the process-local hub that wakes a tenant's open streams when its numbers
may have changed, and hands each the body from the cache.

There is no broker connection per client. A process learns of changes once, from what it already
has: ``changes.announcements`` (every generation this process brings to the cache: its own
commits, its listener's ticks), and, on a shared cache, a watcher that brings the changes other
processes applied: every ``STREAM_WATCH_INTERVAL`` it reads the changes feed past where it last
read (every generation write appends its tenant), then the generations of the announced tenants
it has streams for. Only when the feed cannot say (its first read, entries lost to a flush or a
failover, a burst past ``FEED_MOST``) or every ``FULL_LOOK_SECONDS`` (should an announcement be
lost) does it read the generations of every tenant it has streams for (one ``MGET`` per thousand
tenants). So an idle server's watchers cost one small read each a tick, and a busy one's read
what changed, whatever the number of streams. Only the changed tenants' streams wake.

Caps: a process holds at most ``STREAMS_PER_PROCESS``, and a tenant at most ``STREAMS_PER_TENANT``
over every worker: each stream holds a place in the tenant's set in the shared cache
(``StatsBackend.hold_slot``), renewed by the watcher, so a worker that dies frees its places
within ``SLOT_SECONDS``. While the cache is away a tenant's streams are counted per process.

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
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from flask import Flask, current_app

from ... import metrics
from ...cache.backend import stats_backend
from ...cache.keys import CHANGES_FEED, generation_key, streams_key
from ..changes import announcements, generations
from .stream_groups import Group, State

log = logging.getLogger(__name__)
_KEY = "alignwork.stream_hub"
WATCH_BATCH = 1000
FILES_KEPT_FREE = 256  # descriptors left for polls, the database and the cache past the cap
SLOT_SECONDS = 60.0  # a stream's place in its tenant's count lasts this long unless renewed ...
SLOT_RENEW_SECONDS = 20.0  # ... which the watcher does this often
FULL_LOOK_SECONDS = 5.0  # the watcher reads every generation at least this often, feed or not
FEED_MOST = 1000  # announcements one look reads; past that it reads every generation instead


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
    seen: int = -1  # the group's wake count its last state was read after
    slot: str = field(default_factory=lambda: uuid.uuid4().hex)  # its place in the tenant's count
    slot_held: bool = False

    def first(self) -> Step:
        """The stream's opening: the current state (``news`` unless the client's Last-Event-ID
        names it already), or the end if the tenant is gone."""
        state = self.group.read()
        self.seen = self.group.read_for
        if state is None:
            return Step(ending=Ending.GONE)
        news = state.etag != self.last_etag
        self.last_etag = state.etag
        return Step(state, news)

    def steps(self) -> Iterator[Step]:
        next_keepalive = time.time() + self.keepalive
        while True:
            now = time.time()
            wait = min(next_keepalive, self.ends_at, self.group.midnight, self.group.retry_at) - now
            self.flag.wait(max(wait, 0.0))
            self.flag.clear()
            # The group's wake count, not the flag, says whether to read: a wake that lands
            # between the wait's end and the clear is counted all the same.
            now = time.time()
            if self.hub.stopping:
                yield Step(ending=Ending.SHUTDOWN)
                return
            if now >= self.ends_at:
                yield Step(ending=Ending.LIFETIME)
                return
            if self.group.wakes != self.seen or now >= min(self.group.midnight, self.group.retry_at):
                state = self.group.read()
                self.seen = self.group.read_for
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
        self._feed_at: str | None = None  # where the watcher read the changes feed up to
        self._unseen: set[str] = set()  # tenants with a new group since the watcher's last look
        self._full_look_at = 0.0

    def capacity(self) -> int:
        """``STREAMS_PER_PROCESS``, cut to what the open-files limit leaves room for."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = int(self.app.config["STREAMS_PER_PROCESS"])
        return cap if soft == resource.RLIM_INFINITY else max(0, min(cap, soft - FILES_KEPT_FREE))

    def open(self, tenant_id: str, zone: ZoneInfo, ends_at: float, last_etag: str | None) -> Subscription:
        """A new stream, or ``Refused`` past a cap: this process's caps first (no round trip),
        then the tenant's place over every worker."""
        config = self.app.config
        retry = int(config["STREAM_RETRY_SECONDS"]) * 2
        subscription = self._register(tenant_id, zone, ends_at, last_etag, retry)
        backend = stats_backend()
        if backend.shared:
            held = backend.hold_slot(streams_key(tenant_id), subscription.slot, int(config["STREAMS_PER_TENANT"]),
                                     SLOT_SECONDS)
            if held is False:
                self._close(subscription)
                metrics.STREAMS_REFUSED.labels(reason="tenant").inc()
                raise Refused("Too many open streams for this tenant; poll instead.", 429, retry)
            subscription.slot_held = bool(held)  # None: the cache is away, counted here alone
        return subscription

    def _register(self, tenant_id: str, zone: ZoneInfo, ends_at: float, last_etag: str | None,
                  retry: int) -> Subscription:
        config = self.app.config
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
                self._unseen.add(tenant_id)  # the watcher's first sight of it
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
        if subscription.slot_held:
            stats_backend().release_slot(streams_key(group.tenant_id), subscription.slot)

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
        renew_at = time.monotonic() + SLOT_RENEW_SECONDS
        context = self.app.app_context()  # one for the watcher's life: it reaches the cache only
        context.push()
        while not self.stopping:
            try:
                self._look()
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + SLOT_RENEW_SECONDS
                    self._renew_slots()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failure
                log.exception("stream watcher failed; looking again")
            time.sleep(interval)
        context.pop()

    def _renew_slots(self) -> None:
        """Renew the places this process's streams hold in their tenants' counts."""
        held: dict[str, list[str]] = {}
        with self._lock:
            for group in self._groups.values():
                for subscription in group.subscriptions:
                    if subscription.slot_held:
                        held.setdefault(streams_key(group.tenant_id), []).append(subscription.slot)
        stats_backend().renew_slots(held, SLOT_SECONDS)

    def _look(self) -> None:
        """Wake a tenant's groups when its generation moved since the watcher last saw it, and
        at first sight if it is not the one its groups read under (it moved in between). Reads
        the generations of the tenants the changes feed announced and of those new to it, or of
        every tenant it watches when the feed cannot say or a full look is due: an idle look is
        one read of the feed's last entry."""
        backend = stats_backend()
        fed = backend.read_feed(CHANGES_FEED, self._feed_at, FEED_MOST)
        now = time.monotonic()
        announced = None if fed is None else fed.tenants  # None: the feed cannot say (or is away)
        full = announced is None or now >= self._full_look_at
        if fed is not None:
            self._feed_at = fed.position
        if not full and not self._unseen and not announced:
            return
        with self._lock:
            unseen, self._unseen = self._unseen, set()
            read_under: dict[str, set] = {}
            for group in self._groups.values():
                read_under.setdefault(group.tenant_id, set()).add(group.generation)
        if full:
            self._full_look_at = now + FULL_LOOK_SECONDS
            tenant_ids = sorted(read_under)
        else:
            tenant_ids = sorted((unseen | announced).intersection(read_under))
        read_all = False
        try:
            read_all = self._wake_moved(backend, tenant_ids, read_under)
        finally:
            if not read_all:  # the feed has moved past what was not read: the next look reads all
                self._full_look_at = 0.0

    def _wake_moved(self, backend, tenant_ids: list[str], read_under: dict[str, set]) -> bool:
        """Wake the tenants among ``tenant_ids`` whose generation moved since the watcher saw
        it; whether every generation could be read."""
        changed = {}
        read_all = True
        for start in range(0, len(tenant_ids), WATCH_BATCH):
            batch = tenant_ids[start:start + WATCH_BATCH]
            held = backend.fetch(*(generation_key(t) for t in batch), ungated=True)
            if held is None:
                read_all = False
                break
            for tenant_id, value in zip(batch, held):
                generation = generations.current(value)
                if generation is None or generation == self._seen.get(tenant_id):
                    continue
                self._seen[tenant_id] = generation
                if read_under[tenant_id] != {generation}:
                    changed[tenant_id] = None
        if changed:
            self.wake(changed)
        return read_all


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
