"""Open dashboards polling mega-stats as browsers do: on a timer with jitter, conditionally.

wrk measures how fast the server can go; this measures what a realistic, light load costs. A
dashboard polls every ``interval`` seconds give or take ``jitter``, starting at a random offset
so a fleet does not poll in lockstep, and revalidates like a browser keeping a ``no-cache``
body: it sends ``If-None-Match`` with the last ETag and, on a 304, shows the body it kept. Every
poll is recorded with its send and receive times, so a scenario can judge afterwards which body
each poll showed against what had been written by then.

The load is a few requests per second, so plain ``http.client`` on a small thread pool is
enough; a dashboard whose previous poll has not come back skips its turn, as a browser's timer
callback would wait for its fetch, so a slow server is never flooded.
"""

from __future__ import annotations

import heapq
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import client


@dataclass(frozen=True)
class Dashboard:
    tenant: str
    token: str


@dataclass(frozen=True)
class Poll:
    """One poll as the dashboard saw it. Times are ``time.monotonic()``."""

    tenant: str
    sent: float
    received: float
    status: int  # 0: no answer
    x_cache: str
    counts: dict | None  # what the dashboard shows after it: the new body, or the kept one on a 304
    conditional: bool

    @property
    def ms(self) -> float:
        return (self.received - self.sent) * 1000

    @property
    def answered(self) -> bool:
        return self.status in (200, 304)


@dataclass
class _State:
    dashboard: Dashboard
    etag: str = ""
    counts: dict | None = None
    busy: bool = False


@dataclass
class Fleet:
    """Dashboards polling ``base_url + path`` until :meth:`stop`; every poll lands in ``polls``."""

    base_url: str
    path: str
    dashboards: list[Dashboard]
    interval: float
    jitter: float
    rng: random.Random
    conditional: bool = True
    threads: int = 16
    timeout: float = 10.0
    polls: list[Poll] = field(default_factory=list)
    skipped: int = 0  # turns a dashboard let pass while its previous poll was out

    def __post_init__(self) -> None:
        self._states = [_State(d) for d in self.dashboards]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="dashboard")
        self._scheduler: threading.Thread | None = None

    def start(self, spread: float | None = None) -> None:
        """Each dashboard's first poll at a random offset in ``[0, spread)`` (one interval by
        default), as dashboards opened at different moments."""
        spread = self.interval if spread is None else spread
        now = time.monotonic()
        due = [(now + self.rng.uniform(0, spread), n) for n in range(len(self._states))]
        heapq.heapify(due)
        self._scheduler = threading.Thread(target=self._schedule, args=(due,), name="fleet", daemon=True)
        self._scheduler.start()

    def stop(self) -> None:
        """No new polls; wait (bounded by the timeout) for those still out."""
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.join(self.timeout + 5)
        self._pool.shutdown(wait=True)

    def snapshot(self) -> list[Poll]:
        with self._lock:
            return list(self.polls)

    def _schedule(self, due: list[tuple[float, int]]) -> None:
        while due and not self._stopping.is_set():
            at, number = due[0]
            if self._stopping.wait(max(0.0, at - time.monotonic())):
                return
            heapq.heapreplace(due, (at + self.interval + self.rng.uniform(-self.jitter, self.jitter), number))
            state = self._states[number]
            with self._lock:
                if state.busy:
                    self.skipped += 1
                    continue
                state.busy = True
            self._pool.submit(self._poll, state)

    def _poll(self, state: _State) -> None:
        dashboard = state.dashboard
        headers = {"If-None-Match": state.etag} if self.conditional and state.etag else {}
        sent = time.monotonic()
        answer = client.send(self.base_url + self.path, dashboard.token, headers=headers, timeout=self.timeout)
        received = time.monotonic()
        counts = state.counts
        if answer.status == 200:
            try:
                counts = json.loads(answer.body)
            except ValueError:
                counts = None
            state.etag, state.counts = answer.etag, counts
        elif answer.status != 304:
            counts = None
        poll = Poll(dashboard.tenant, sent, received, answer.status, answer.x_cache, counts, bool(headers))
        with self._lock:
            self.polls.append(poll)
            state.busy = False


def sweep(base_url: str, path: str, dashboards: list[Dashboard], threads: int = 4,
          timeout: float = 10.0) -> list[client.Answer]:
    """One unconditional poll per dashboard, a few at a time: warms every tenant's entry."""
    with ThreadPoolExecutor(threads, thread_name_prefix="sweep") as pool:
        return list(pool.map(lambda d: client.send(base_url + path, d.token, timeout=timeout), dashboards))
