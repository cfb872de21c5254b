"""Conditional polling: a weak ETag that names the exact body, and 304 without computing."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from tests.conftest import Builder, count_statements, utc

STATS = "/api/v1/appointments/mega-stats"
NOW = utc(2026, 5, 13, 14)  # Wednesday, 11:00 in Recife


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def app(cached_app, clock):
    build = Builder(cached_app)
    build.tenant("acme")
    build.tenant("rival")
    build.appointments("acme", [(NOW + timedelta(hours=1), "confirmed")])
    build.appointments("rival", [(NOW + timedelta(hours=1), "confirmed")])
    return cached_app


def get(app, tenant="acme", tz=None, etag=None):
    headers = {"If-None-Match": etag} if etag else {}
    url = f"{STATS}?tenantId={tenant}" + (f"&tz={tz}" if tz else "")
    return app.test_client().get(url, headers=headers)


def test_the_answer_names_its_body_and_asks_browsers_to_revalidate(app):
    response = get(app)
    assert response.status_code == 200
    assert response.headers["ETag"].startswith('W/"')
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert get(app).headers["ETag"] == response.headers["ETag"]  # the HIT carries the same tag


def test_the_current_tag_is_a_304_with_no_body_no_computation_and_no_sql(app):
    etag = get(app).headers["ETag"]
    with count_statements(app) as seen:
        response = get(app, etag=etag)
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["X-Cache"] == "HIT" and response.headers["ETag"] == etag
    assert seen == []


def test_a_list_of_tags_and_a_strong_spelling_match_too(app):
    etag = get(app).headers["ETag"]
    assert get(app, etag=f'W/"other", {etag}').status_code == 304
    assert get(app, etag=etag.removeprefix("W/")).status_code == 304  # If-None-Match compares weakly


def test_a_write_that_changes_the_numbers_changes_the_tag(app):
    etag = get(app).headers["ETag"]
    Builder(app).appointments("acme", [(NOW + timedelta(hours=2), "pending")])
    response = get(app, etag=etag)
    assert response.status_code == 200 and response.headers["X-Cache"] == "MISS"
    assert response.headers["ETag"] != etag
    assert response.get_json()["today"] == {"confirmed": 1, "pending": 1}


def test_a_write_that_leaves_the_numbers_alone_is_still_a_304(app):
    """The tag digests the body, not the generation: recomputing the same numbers matches."""
    etag = get(app).headers["ETag"]
    Builder(app).appointments("acme", [(NOW + timedelta(days=400), "pending")])  # outside every period
    response = get(app, etag=etag)
    assert (response.status_code, response.headers["X-Cache"]) == (304, "MISS")


def test_another_zone_or_tenant_never_matches(app):
    etag = get(app).headers["ETag"]
    # Same numbers, other zone and other tenant: the bodies are equal, the tags are not.
    assert get(app, tz="America/Fortaleza").get_json() == get(app).get_json()
    assert get(app, tz="America/Fortaleza", etag=etag).status_code == 200
    assert get(app, tenant="rival").get_json() == get(app).get_json()
    assert get(app, tenant="rival", etag=etag).status_code == 200


def test_the_next_local_day_never_matches(app, clock):
    etag = get(app).headers["ETag"]
    clock.move_to(utc(2026, 5, 14, 3, 0, 1))  # 00:00:01 in Recife on Thursday
    response = get(app, etag=etag)
    assert response.status_code == 200 and response.headers["ETag"] != etag


# -- what the numbers are for: the zone and local date, on every answer ----------------------

ZONE, LOCAL_DATE = "X-Stats-Zone", "X-Stats-Local-Date"
# The body of the existing client's contract, byte for byte: the zone and date go in headers.
BODY = (b'{"today":{"confirmed":1,"pending":0},"week":{"confirmed":1,"pending":0},'
        b'"month":{"confirmed":1,"pending":0},"nextMonth":{"confirmed":0,"pending":0}}\n')


def test_the_body_is_unchanged_by_the_zone_and_date_headers(app):
    miss, hit = get(app), get(app)
    assert (miss.headers["X-Cache"], hit.headers["X-Cache"]) == ("MISS", "HIT")
    assert miss.data == hit.data == BODY


@pytest.mark.parametrize("tz,zone,day", [
    (None, "America/Recife", "2026-05-13"),  # the tenant's zone: 11:00 on Wednesday
    ("Pacific/Kiritimati", "Pacific/Kiritimati", "2026-05-14"),  # UTC+14: already Thursday
    ("Pacific/Pago_Pago", "Pacific/Pago_Pago", "2026-05-13"),  # UTC-11: 03:00 on Wednesday
])
def test_every_answer_names_the_zone_and_local_date_it_counts(app, tz, zone, day):
    miss = get(app, tz=tz)
    hit = get(app, tz=tz)
    not_modified = get(app, tz=tz, etag=hit.headers["ETag"])
    assert [r.status_code for r in (miss, hit, not_modified)] == [200, 200, 304]
    for response in (miss, hit, not_modified):
        assert (response.headers[ZONE], response.headers[LOCAL_DATE]) == (zone, day)


def test_the_local_date_is_the_day_of_the_entry_served(app, clock):
    """At local midnight the entry (and its tag) changes, and so does the date with it."""
    before = get(app)
    clock.move_to(utc(2026, 5, 14, 2, 59, 59))  # 23:59:59 in Recife: still Wednesday's entry
    late = get(app, etag=before.headers["ETag"])
    assert (late.status_code, late.headers[LOCAL_DATE]) == (304, "2026-05-13")
    clock.move_to(utc(2026, 5, 14, 3, 0, 1))  # 00:00:01 on Thursday
    after = get(app, etag=before.headers["ETag"])
    assert after.status_code == 200  # computed now, or just before midnight (test_midnight)
    assert after.headers[LOCAL_DATE] == "2026-05-14"
    assert after.get_json()["today"] == {"confirmed": 0, "pending": 0}


def test_an_invalid_zone_is_a_400_naming_tz_and_carries_no_zone_or_date(app):
    response = get(app, tz="Mars/Olympus")
    assert response.status_code == 400
    assert response.get_json()["errors"]["tz"][0].startswith("Unknown time zone 'Mars/Olympus'")
    assert ZONE not in response.headers and LOCAL_DATE not in response.headers


def test_the_openapi_document_names_the_headers_on_200_and_304(app):
    spec = app.test_client().get("/api/openapi.json", auth=False).get_json()
    responses = spec["paths"][STATS]["get"]["responses"]
    for status in ("200", "304"):
        assert {ZONE, LOCAL_DATE, "ETag", "X-Cache"} <= set(responses[status]["headers"]), status
    assert responses["200"]["headers"][LOCAL_DATE]["schema"]["format"] == "date"
