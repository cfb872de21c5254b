"""Judging each poll's body against the writes made before it: the fleet's stale answers.

The harness makes every write itself and knows what it changes (a booking for today adds one
to today's, this week's and this month's count of its status; a cancellation takes one away),
so for each poll it can say which numbers the dashboard should have shown. A poll counts as
*stale* when it was sent after a write's answer had arrived and does not show that write. A
poll that overlapped a write of its tenant (either may be first) is not judged, nor is any poll
of a tenant after one of its writes failed (its effect is then unknown).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from .dashboards import Poll

#: A write for today moves the count of today and of the week and month around it.
PERIODS_WITH_TODAY = ("today", "week", "month")


@dataclass(frozen=True)
class Write:
    """One write as the harness saw it. Times are ``time.monotonic()``."""

    tenant: str
    sent: float
    received: float
    ok: bool
    change: dict[str, int]  # status -> +1 or -1, today

    def overlaps(self, poll: Poll) -> bool:
        return self.sent < poll.received and poll.sent < self.received


@dataclass
class Verdicts:
    judged: int = 0
    stale: int = 0
    unjudged: int = 0  # overlapped a write of their tenant, or after a failed one


def expected(baseline: dict, writes: list[Write]) -> dict:
    counts = copy.deepcopy(baseline)
    for write in writes:
        for status, delta in write.change.items():
            for period in PERIODS_WITH_TODAY:
                counts[period][status] += delta
    return counts


def judge(polls: list[Poll], writes: list[Write], baselines: dict[str, dict]) -> Verdicts:
    """Verdicts over the answered polls (a failed poll shows nothing new: counted elsewhere)."""
    by_tenant: dict[str, list[Write]] = {}
    for write in sorted(writes, key=lambda w: w.sent):
        by_tenant.setdefault(write.tenant, []).append(write)
    verdicts = Verdicts()
    for poll in polls:
        if not poll.answered or poll.counts is None:
            continue
        own = by_tenant.get(poll.tenant, [])
        if any(w.overlaps(poll) for w in own) or any(not w.ok and w.sent < poll.received for w in own):
            verdicts.unjudged += 1
            continue
        verdicts.judged += 1
        done = [w for w in own if w.received <= poll.sent]
        if poll.counts != expected(baselines[poll.tenant], done):
            verdicts.stale += 1
    return verdicts
