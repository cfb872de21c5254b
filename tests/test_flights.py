"""The in-process single flight (``services/stats/flights.py``) on its own, in real threads."""

from __future__ import annotations

import threading

import pytest

from alignwork.services.stats.flights import Flights


def _follow(flights: Flights, key, wait: float, into: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.append(flights.share(key, lambda: "mine", wait)))
    thread.start()
    return thread


def _lead_until(flights: Flights, key, go: threading.Event, result=None, error=None) -> tuple[threading.Thread, list]:
    """A leader in the air on ``key`` until ``go`` is set; then it returns ``result`` or raises."""
    flying, out = threading.Event(), []

    def lead():
        flying.set()
        go.wait(10)
        if error:
            raise error
        return result

    def run():
        try:
            out.append(flights.share(key, lead, 5))
        except Exception as exc:  # noqa: BLE001 - the leader's own
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert flying.wait(5)
    return thread, out


def test_followers_take_the_leaders_answer_and_the_flight_lands():
    flights, go, got = Flights(), threading.Event(), []
    leader, led = _lead_until(flights, "k", go, result="counts")
    followers = [_follow(flights, "k", 5, got) for _ in range(5)]
    go.set()
    for thread in (leader, *followers):
        thread.join(10)
    assert led == [("counts", True)]
    assert got == [("counts", False)] * 5
    assert flights.under_way() == 0


def test_a_leader_that_raises_keeps_its_error_and_its_followers_go_their_own_way():
    flights, go, got = Flights(), threading.Event(), []
    leader, led = _lead_until(flights, "k", go, error=RuntimeError("database away"))
    follower = _follow(flights, "k", 5, got)
    go.set()
    leader.join(10), follower.join(10)
    assert isinstance(led[0], RuntimeError)
    assert got == [None]  # not the error: the follower tries for itself
    assert flights.under_way() == 0
    assert flights.share("k", lambda: "again", 1) == ("again", True)  # the next one leads


def test_a_follower_waits_no_longer_than_it_was_told():
    flights, go, got = Flights(), threading.Event(), []
    leader, _ = _lead_until(flights, "k", go, result="late")
    follower = _follow(flights, "k", 0.1, got)
    follower.join(5)
    assert got == [None]  # gave up while the leader still flies
    go.set()
    leader.join(10)


@pytest.mark.parametrize("other", ["k2", ("k", "another generation")])
def test_other_keys_do_not_share(other):
    flights, go = Flights(), threading.Event()
    leader, _ = _lead_until(flights, ("k", "generation"), go, result="first")
    assert flights.share(other, lambda: "own", 1) == ("own", True)
    go.set()
    leader.join(10)
