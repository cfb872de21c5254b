"""Stored values across a rolling deploy: each pair of neighbouring releases reads what the
other writes, and the one rule for "newer" is the same in the Lua script as in Python.

The releases: the previous one reads only positional tuples (stats entries of four or five
fields, tenant records of four); this one reads those and the named-field format 2, and still
writes tuples; the next one writes format 2 (``as_stored(2)``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignwork.cache.backend import holds_at_least, stats_backend
from alignwork.cache.keys import StatsKey, generation_key, tenant_record_key
from alignwork.cache.redis_backends import ADVANCE_SCRIPT
from alignwork.services.stats.entries import Entry
from alignwork.services.tenants import TenantInfo
from tests.conftest import REDIS_URL, Builder, require_redis, utc

STATS = "/api/v1/appointments/mega-stats"
NOW = utc(2026, 5, 13, 14)
KEY = StatsKey("acme", "America/Recife", NOW.date())


def previous_release_entry(value):
    """How the previous release reads a stats entry."""
    return Entry(*value) if isinstance(value, tuple) and len(value) in (4, 5) else None


def previous_release_record(value):
    """How the previous release reads a tenant record."""
    return TenantInfo(*value) if isinstance(value, tuple) and len(value) == 4 else None


@pytest.fixture
def app(cached_app):
    with time_machine.travel(NOW, tick=False):
        Builder(cached_app).tenant("acme")
        Builder(cached_app).appointments("acme", [(NOW + timedelta(hours=1), "confirmed")])
        yield cached_app


def poll(app):
    return app.test_client().get(f"{STATS}?tenantId=acme&tz=America/Recife")


def stored(app, *keys):
    with app.app_context():
        return stats_backend().fetch(*keys)


def test_the_previous_release_reads_what_this_one_writes(app):
    first = poll(app)
    assert first.headers["X-Cache"] == "MISS"
    record, entry = stored(app, tenant_record_key("acme"), str(KEY))
    assert previous_release_record(record) == TenantInfo.from_stored(record)
    assert previous_release_record(record).name == "acme"
    assert previous_release_entry(entry).body == first.data


def test_this_release_reads_what_the_next_one_writes(app):
    first = poll(app)
    with app.app_context():
        record, entry = stats_backend().fetch(tenant_record_key("acme"), str(KEY))
        backend = stats_backend()
        backend.store(tenant_record_key("acme"), TenantInfo.from_stored(record).as_stored(2), 60)
        backend.store(str(KEY), Entry.from_stored(entry).as_stored(2), 60)
        assert isinstance(backend.fetch(str(KEY))[0], dict)  # really the next release's shape
    again = poll(app)
    assert again.headers["X-Cache"] == "HIT"
    assert again.data == first.data and again.headers["ETag"] == first.headers["ETag"]


def test_the_next_release_reads_what_this_one_writes():
    """The next release keeps this release's reader: a round trip through each format."""
    entry = Entry("e:3", 1.5, "tag", b"{}\n", precomputed=True)
    tenant = TenantInfo("acme", "Clínica", "America/Recife", 2.5)
    for stored_format in (1, 2):
        assert Entry.from_stored(entry.as_stored(stored_format)) == entry
        assert TenantInfo.from_stored(tenant.as_stored(stored_format)) == tenant


def test_a_named_field_this_release_does_not_know_is_ignored_and_a_new_format_is_a_miss():
    fields = {**Entry("e:3", 1.5, "tag", b"{}\n").as_stored(2), "added_later": 1}
    assert Entry.from_stored(fields) == Entry("e:3", 1.5, "tag", b"{}\n")
    assert Entry.from_stored({**fields, "format": 3}) is None
    assert TenantInfo.from_stored({"format": 2, "id": "acme"}) is None  # incomplete: read again


_EPOCHS = st.text(alphabet="ab:0", min_size=0, max_size=4)
_HELD = st.one_of(
    st.none(),
    st.builds(lambda e, v: f"{e}:{v}", _EPOCHS, st.integers(0, 2**40)),
    st.text(alphabet="ab:09x", max_size=8),
)


@pytest.fixture(scope="module")
def advance_script():
    require_redis()
    client = redis.Redis.from_url(REDIS_URL)
    yield client, client.register_script(ADVANCE_SCRIPT)
    client.delete("alignwork-test-rule:{g}", "alignwork-test-rule:{r}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(held=_HELD, epoch=_EPOCHS.filter(bool), version=st.integers(0, 2**40))
def test_the_lua_script_and_python_agree_on_newer(advance_script, held, epoch, version):
    client, script = advance_script
    keys = ["alignwork-test-rule:{g}", "alignwork-test-rule:{r}"]
    client.delete(*keys)
    if held is not None:
        client.set(keys[0], held)
    answer = script(keys=keys, args=[epoch, version, 60, b"record", 60])
    kept = held is not None and answer == held.encode()
    assert kept == holds_at_least(None if held is None else held.encode(), epoch, version)
    assert client.get(keys[0]) == (held.encode() if kept else f"{epoch}:{version}".encode())
