"""8. Change latency: from a committed change to every poll showing it, under polling.

Dashboards poll the clinic from several threads, each poll on a connection of its own, so the
polls spread over every gunicorn worker (one Redis shared by three workers, PostgreSQL). The
harness makes one write at a time, through the API or as psql would (a statement on a
connection of its own, which the app never sees, so only the database's change record and the
listener can bring it to the cache), and waits until the polls have shown it for a while.

A write's latency is from the moment it returned (its 201, or psql's COMMIT) to the moment
after which every poll sent shows it: the last poll still showing the old numbers, or 0 when
there was none. That bounds the time until every worker shows the change; which worker answered
a poll is not told apart here (the tests do that, from the access log).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import psycopg

from tests.background import Running

from .. import client
from ..report import median, percentile
from ..stack import ServerSettings
from . import CLINIC, MEGA_STATS, Context

SCENARIO = "8 change latency"
SETTLE = 3.0  # seconds of polling after a write before the next one


class _Polls(Running):
    join_seconds = 15

    def __init__(self, url: str, token: str, threads: int = 4):
        self.url, self.token = url, token
        self.polls: list[tuple[float, bytes]] = []
        super().__init__(*[self._run] * threads)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            answer = client.get(self.url, self.token)
            if answer.status == 200:
                self.polls.append((sent, answer.body))
            time.sleep(0.02)

    def latest(self) -> bytes:
        return self.polls[-1][1]

    def latency(self, since: float, old: bytes) -> float:
        stale = [sent for sent, body in self.polls if sent >= since and body == old]
        return max(stale) - since if stale else 0.0


def run(ctx: Context) -> None:
    if ctx.main.kind != "postgresql" or "redis" not in ctx.plan.caches:
        ctx.report.notes.append("Scenario 8 (change latency) needs PostgreSQL and Redis; skipped.")
        return
    token = ctx.clinic_token()
    writes = 3 if ctx.plan.quick else 15
    settings = ServerSettings.deployable("redis", "sync", 3, 1)
    dsn = ctx.main.url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        patient = conn.execute("SELECT id FROM patients WHERE tenant_id = %s LIMIT 1", (CLINIC,)).fetchone()[0]
    latencies: dict[str, list[float]] = {"API": [], "psql": []}
    with ctx.stack.server(ctx.main, settings) as server, _Polls(server.url + MEGA_STATS, token) as polls:
        time.sleep(SETTLE)
        for _ in range(writes):
            for kind in latencies:
                old = polls.latest()
                starts = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
                if kind == "API":
                    answer = client.send(server.url + "/api/v1/appointments", token, method="POST", payload={
                        "patientId": patient, "startsAt": starts, "durationMin": 30, "status": "confirmed"})
                    if answer.status != 201:
                        raise RuntimeError(f"a booking was answered {answer.status}")
                else:
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute("INSERT INTO appointments (tenant_id, patient_id, starts_at, duration_min, "
                                     "status, created_at, updated_at, version) VALUES "
                                     "(%s, %s, %s, 30, 'confirmed', now(), now(), 1)", (CLINIC, patient, starts))
                returned = time.monotonic()
                time.sleep(SETTLE)
                latencies[kind].append(polls.latency(returned, old))
    label = f"{settings.label}, {writes} writes each, polls on 4 threads"
    for kind, values in latencies.items():
        ctx.report.add(SCENARIO, label, f"{kind} writes: change latency p50", median(values), "s")
        ctx.report.add(SCENARIO, label, f"{kind} writes: change latency p99 (max)", percentile(values, 0.99), "s",
                       target=("<=", 2.0))
