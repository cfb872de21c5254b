"""11. Live dashboards, capacity: 5,000 streams on the shipped config (called by ``streams.py``).

On a fresh server, after a warm-up (each tenant's mega-stats read once, so its record and entry
are cached, and a wrk warm-up of the HIT), the workers' summed ``Pss`` with no stream open and
the server's CPU at rest without streams (half the window below: its fixed cost, the change
listeners' ticks among it); then,
``repeats`` times, HIT polls (wrk, as in scenario 1) without streams, and with every stream open,
one right after the other. The first time the streams are open, before the polls: the CPU of the
whole server (master and workers, ``/proc/<pid>/stat``) over ``streams_idle_seconds`` of rest,
which hold at least one keep-alive of every stream, then the workers' ``Pss`` again. Memory per
stream is the difference over the number of streams (kernel socket buffers are not in it).

Between rounds the streams are reset and the server's own count (cache-metrics
``streams_open``) must fall to 0 before the next polls without them: a worker learns that a
client has gone when its next keep-alive fails, within ``STREAM_KEEPALIVE_SECONDS``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import client, wrk
from ..event_streams import Holder, Stream
from ..stack import Server, ServerSettings
from . import MEGA_STATS, Context

SETTLE = 1.0  # seconds after the streams opened (or the warm-up) before a reading
KEEPALIVE = 15.0  # STREAM_KEEPALIVE_SECONDS shipped: how long a closed stream may stay counted


@dataclass
class Capacity:
    streams: int
    not_open: int = 0  # in the worst round
    cpu_none: float = 0.0  # of one core, master and workers, at rest with no stream open
    cpu_percent: float = 0.0  # the same with every stream open
    keepalives: int = 0  # comments the streams received in that window
    pss_none: int = 0  # KiB, workers summed
    pss_with: int = 0
    runs: dict[str, list[wrk.WrkResult]] = field(default_factory=lambda: {"without": [], "with": []})
    #: The server's CPU per HIT in each run (µs): what the streams cost the polls, less moved
    #: than the p99s by whatever else runs on the machine.
    cpu_per_hit: dict[str, list[float]] = field(default_factory=lambda: {"without": [], "with": []})
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average before and after


def measure(ctx: Context, settings: ServerSettings, make_streams: Callable[[], list[Stream]],
            tokens: list[str], query: str) -> Capacity:
    """``make_streams`` gives the streams to open, anew each round; ``tokens`` and ``query``
    (``?tz=…``) are the warm-up's, one mega-stats read per token."""
    plan = ctx.plan
    token, admin = ctx.clinic_token(), ctx.admin_token()
    found = Capacity(len(make_streams()))
    before = os.getloadavg()[0]
    with ctx.stack.server(ctx.main, settings) as server:
        holder = Holder.to(server.url)
        try:
            _warm(ctx, server, tokens, query, token)
            time.sleep(SETTLE)
            found.pss_none = sum(server.pss_kib().values())
            found.cpu_none = _cpu_percent(server, plan.streams_idle_seconds / 2)
            for round_ in range(plan.repeats):
                if round_:
                    _drain(server, admin)
                _poll(ctx, server, token, found, "without")
                streams = make_streams()
                holder.open(streams, timeout=max(120.0, found.streams / 20))
                found.not_open = max(found.not_open, sum(not s.open for s in streams))
                if round_ == 0:
                    _rest(found, server, streams, plan.streams_idle_seconds)
                _poll(ctx, server, token, found, "with")
                holder.close(streams)
        finally:
            holder.stop()
    found.load = (before, os.getloadavg()[0])
    return found


def _poll(ctx: Context, server: Server, token: str, found: Capacity, kind: str) -> None:
    used = server.cpu_seconds()
    result = ctx.load(server, MEGA_STATS, ctx.plan.run_seconds, token=token)
    found.runs[kind].append(result)
    found.cpu_per_hit[kind].append(1e6 * (server.cpu_seconds() - used) / max(1, result.requests))


def _rest(found: Capacity, server: Server, streams: list[Stream], seconds: float) -> None:
    """The server's CPU over ``seconds`` with every stream open and nothing else, then its Pss."""
    time.sleep(SETTLE)
    comments = sum(s.comments for s in streams)
    found.cpu_percent = _cpu_percent(server, seconds)
    found.keepalives = sum(s.comments for s in streams) - comments
    found.pss_with = sum(server.pss_kib().values())


def _cpu_percent(server: Server, seconds: float) -> float:
    """The server's CPU (master and workers) over the next ``seconds``, in % of one core."""
    began, used = time.monotonic(), server.cpu_seconds()
    time.sleep(seconds)
    return 100 * (server.cpu_seconds() - used) / (time.monotonic() - began)


def _warm(ctx: Context, server: Server, tokens: list[str], query: str, token: str) -> None:
    for each in tokens:
        client.get(f"{server.url}{MEGA_STATS}{query}", each)
    ctx.warm(server, MEGA_STATS, token=token)


def _drain(server: Server, admin: str) -> None:
    """Wait until the server counts no open stream (two keep-alives at most)."""
    deadline = time.monotonic() + 2 * KEEPALIVE + 10
    while time.monotonic() < deadline:
        found = client.summary(server.url, admin)
        if found is not None and found.get("streams_open") == 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the server still counted open streams {2 * KEEPALIVE + 10:.0f} s after they closed")
