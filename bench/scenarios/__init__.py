"""The benchmark's measurements, one module each, sharing one :class:`Context`.

A scenario reads the plan, starts what it needs through the stack, adds rows to the report and
leaves nothing running behind it.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import client, wrk
from ..databases import Database
from ..plan import Plan
from ..report import Report
from ..stack import Server, Stack

CLINIC = "clinic"
MEGA_STATS = "/api/v1/appointments/mega-stats"
FLOOR = "/bench/floor"
#: Zones to choose from: the one nearest local noon, so no run crosses a local midnight.
MIDDAY_ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata", "Asia/Tokyo", "Pacific/Auckland", "Pacific/Honolulu",
                "America/Los_Angeles", "America/New_York", "America/Recife", "Asia/Dubai", "Asia/Bangkok")


def zones() -> list[str]:
    """Region/City time zones, sorted: growth takes its keys from the start of this list, the
    stampede its cold keys from the end, so no scenario finds another's entries."""
    skip = ("Etc/", "SystemV/", "posix/", "right/", "US/", "Canada/", "Brazil/", "Mexico/", "Chile/")
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(skip))


def midday_zone() -> zoneinfo.ZoneInfo:
    """The zone of :data:`MIDDAY_ZONES` nearest its local noon now: a scenario whose tenants live
    there sees no local midnight (and no midnight wake of a stream) while it runs."""
    now = datetime.now(timezone.utc)

    def from_noon(name: str) -> float:
        local = now.astimezone(zoneinfo.ZoneInfo(name))
        return abs(local.hour + local.minute / 60 - 12)

    return zoneinfo.ZoneInfo(min(MIDDAY_ZONES, key=from_noon))


@dataclass
class Context:
    plan: Plan
    stack: Stack
    report: Report
    databases: dict[str, Database]
    _tokens: dict[tuple[str, str | None], str] = field(default_factory=dict)

    @property
    def main(self) -> Database:
        """The database gunicorn serves from."""
        return self.databases[self.plan.server_database]

    def in_process_caches(self) -> dict[str, dict]:
        """The cache settings an in-process app is measured with: SimpleCache, and RedisCache
        when the run measures Redis (there the cache read is a network round trip)."""
        caches = {"SimpleCache": {"CACHE_TYPE": "SimpleCache"}}
        if "redis" in self.plan.caches:
            caches["RedisCache"] = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": self.stack.redis_url,
                                    "CACHE_KEY_PREFIX": self.stack.key_prefix}
        return caches

    def clinic_token(self) -> str:
        """The token of the tenant the HTTP scenarios read, seeding it on first use."""
        self.stack.seed(self.main, CLINIC, self.plan.clinic_appointments)
        return self._token(CLINIC)

    def admin_token(self) -> str:
        return self._token(None)

    def _token(self, tenant: str | None) -> str:
        key = (self.main.url, tenant)
        if key not in self._tokens:
            self._tokens[key] = self.stack.token(self.main, tenant)
        return self._tokens[key]

    def load(self, server: Server, path: str, seconds: int, token: str | None = None,
             rotate: Path | None = None, once: bool = False, connections: int | None = None,
             headers: dict[str, str] | None = None) -> wrk.WrkResult:
        """One wrk run against ``server``, recorded in the command log."""
        args = wrk.command(server.url + path, seconds, connections or self.plan.connections,
                           token=token, rotate=rotate, once=once, headers=headers)
        self.stack.log.record(args)
        return wrk.run(args, seconds)

    def warm(self, server: Server, path: str, **kwargs) -> None:
        """A warm-up run of the plan's length, not measured; none when that length is 0."""
        if self.plan.warmup_seconds:
            self.load(server, path, self.plan.warmup_seconds, **kwargs)

    def metrics(self, server: Server) -> dict[str, int] | None:
        return client.metrics(server.url, self.admin_token())

    def rotation_file(self, name: str, lines: list[tuple[str, str]]) -> Path:
        """A ``path<TAB>token`` file for ``requests.lua``."""
        path = self.stack.run_dir / name
        path.write_text("".join(f"{p}\t{t}\n" for p, t in lines), encoding="utf-8")
        return path
