"""The stream watcher on a shared cache (real Redis): an idle look reads the changes feed and
nothing else, whatever the number of tenants with streams; a generation written by another
process is announced on the feed, and the next look reads that tenant's generation alone and
wakes only its streams. When the feed cannot say what changed (entries lost to a flush, a burst
past what one look reads), the look reads every watched generation. Two apps sharing the
database and the cache stand for two workers."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from alignwork.cache.backend import stats_backend
from alignwork.cache.feed import FeedRead
from alignwork.cache.keys import CHANGES_FEED
from alignwork.services.stats import stream_hub
from tests.conftest import Builder

LATER = datetime.now(timezone.utc) + timedelta(days=40)


def test_a_look_reads_the_generations_the_feed_announced_and_nothing_when_idle(make_app, monkeypatch):
    watching = make_app(cache="redis", shared_as="deployment", STREAM_WATCH_INTERVAL=3600)
    writing = make_app(cache="redis", shared_as="deployment")
    build = Builder(writing)
    tenants = [build.tenant(f"clinic-{n}") for n in range(30)]
    elsewhere = build.tenant("no-streams-here")
    build.appointments(tenants[0], [(LATER, "confirmed")])

    with watching.app_context():
        hub = stream_hub.hub()
        ends = time.time() + 600
        subscriptions = {t: hub.open(t, ZoneInfo("America/Recife"), ends, None) for t in tenants}
        for subscription in subscriptions.values():
            subscription.first()
        time.sleep(0.5)  # the watcher thread's first look (its next is an hour away) ...
        hub._look()  # ... and one more, which sees the tenants opened after it for the first time
        for subscription in subscriptions.values():  # (and wakes those read before their generation
            subscription.flag.clear()                # was published: a read to no purpose, once)

        backend = stats_backend()
        reads: list[int] = []
        fetch = backend.fetch
        monkeypatch.setattr(backend, "fetch", lambda *keys, **kw: reads.append(len(keys)) or fetch(*keys, **kw))

        def woken() -> list[str]:
            found = [t for t, s in subscriptions.items() if s.flag.is_set()]
            for subscription in subscriptions.values():
                subscription.flag.clear()
            return found

        hub._look()
        hub._look()
        assert reads == []  # the feed's last entry, nothing more: nothing changed
        assert woken() == []

        build.appointments(tenants[7], [(LATER, "pending")])
        hub._look()
        assert reads == [1]  # the one announced tenant's generation, not the 30 watched
        assert woken() == [tenants[7]]

        reads.clear()
        build.appointments(elsewhere, [(LATER, "pending")])
        hub._look()
        assert reads == []  # announced, but no stream here shows it
        assert woken() == []

        # Entries lost (a FLUSHALL, a failover to a replica that lacked them): the feed cannot
        # say what changed meanwhile, so the look reads every watched generation, once.
        backend.delete(CHANGES_FEED)
        build.appointments(tenants[3], [(LATER, "pending")])
        hub._look()
        assert reads == [len(tenants)]
        assert woken() == [tenants[3]]
        reads.clear()
        hub._look()
        assert reads == []

        # More announcements than one look reads: every generation, once.
        monkeypatch.setattr(stream_hub, "FEED_MOST", 2)
        for tenant in tenants[10:13]:
            build.appointments(tenant, [(LATER, "pending")])
        hub._look()
        assert reads == [len(tenants)]
        assert woken() == tenants[10:13]

        for subscription in subscriptions.values():
            subscription.close()
        hub.stop()


def check_feed(app) -> None:
    """``announce`` and ``read_feed`` on the app's shared cache: what is announced after a
    position is read back once; a first read, a lost position and a burst past ``most`` say
    "look at everything" (None)."""
    with app.app_context():
        backend = stats_backend()
        backend.delete(CHANGES_FEED)
        first = backend.read_feed(CHANGES_FEED, None, 10)
        assert first.tenants is None and first.position == ""  # nothing yet, and never read
        empty = backend.read_feed(CHANGES_FEED, "", 10)
        assert empty.tenants == frozenset() and empty.position == ""

        assert backend.announce(CHANGES_FEED, ["a", "b"], 100, 60)
        fed = backend.read_feed(CHANGES_FEED, "", 10)
        assert fed.tenants == {"a", "b"}
        idle = backend.read_feed(CHANGES_FEED, fed.position, 10)
        assert idle == FeedRead(fed.position, frozenset())

        backend.announce(CHANGES_FEED, ["c"], 100, 60)
        later = backend.read_feed(CHANGES_FEED, fed.position, 10)
        assert later.tenants == {"c"} and later.position != fed.position
        assert backend.read_feed(CHANGES_FEED, None, 10) == FeedRead(later.position, None)

        backend.announce(CHANGES_FEED, ["d", "e"], 100, 60)
        two = backend.read_feed(CHANGES_FEED, later.position, 2)
        assert two.tenants == {"d", "e"}  # as many as asked for: still told
        backend.announce(CHANGES_FEED, ["f", "g", "h"], 100, 60)
        burst = backend.read_feed(CHANGES_FEED, two.position, 2)
        assert burst.tenants is None  # more than 2: the reader looks at everything ...
        assert backend.read_feed(CHANGES_FEED, burst.position, 2) == FeedRead(burst.position, frozenset())
        # ... and reads on from the newest entry, not through the backlog

        backend.delete(CHANGES_FEED)
        lost = backend.read_feed(CHANGES_FEED, burst.position, 10)
        assert lost == FeedRead("", None)
        backend.announce(CHANGES_FEED, ["i"], 100, 60)
        assert backend.read_feed(CHANGES_FEED, lost.position, 10).tenants == {"i"}


def test_the_feed_keeps_its_rules_on_redis(make_app):
    check_feed(make_app(cache="redis"))
