"""``flask shell``: the app, ``db``, ``cache``, the models, and a ``stats`` helper that does what
``flask cache`` does but returns data instead of printing it.

On a per-process cache (SimpleCache, ``make run``'s) the shell's cache is its own, empty when it
starts and never the server's: the helper would answer "nothing cached" and zero hits about a
server that is busy. So the shell says so when it starts, and so does the helper's ``repr``.
"""

from __future__ import annotations

from typing import Any

import click

from .. import metrics, models
from ..extensions import cache, db
from ..periods import parse_timezone
from ..services.stats import answer as stats_answer, operators
from ..services.tenants import get_tenant, list_tenants


SERVERS_NUMBERS = ("the server's are on the /ops page and at GET /api/v1/appointments/cache-metrics "
                   "(admin token: flask tenants token --admin)")


def own_cache_notice(what: str) -> str | None:
    """One line saying that ``what`` sees this process's own cache, not the server's, and where
    the server's numbers are; None when the cache is shared (the server's own)."""
    if operators.cache_is_shared():
        return None
    return (f"CACHE_TYPE is SimpleCache, a cache in each process's memory: {what} this process's own "
            f"cache, not the server's; {SERVERS_NUMBERS}.")


class StatsShell:
    """``stats`` in ``flask shell``: the same operations as ``flask cache``, returning data."""

    USAGE = "stats.peek(tenant, tz=None), stats.keys(tenant=None), stats.clear(tenant=None), " \
            "stats.warm(tenant=None), stats.metrics()"

    def peek(self, tenant: str, tz: str | None = None) -> dict | None:
        """The cached value a request would get now, its key and seconds left; None if not cached."""
        return operators.peek(tenant, parse_timezone(tz or get_tenant(tenant).timezone))

    def keys(self, tenant: str | None = None) -> list[dict[str, Any]]:
        return [_describe(entry) for entry in operators.entries(tenant)]

    def clear(self, tenant: str | None = None) -> int:
        return operators.clear(tenant)

    def warm(self, tenant: str | None = None) -> dict[str, str]:
        """Compute and store today's stats of each tenant in its own zone: {tenant: outcome}."""
        return {t.id: warm_one(t.id) for t in tenants_named(tenant)}

    def metrics(self) -> dict:
        return metrics.cache_summary(operators.cache_size())

    def __repr__(self) -> str:
        notice = own_cache_notice("stats sees")
        return f"<stats helper: {self.USAGE}>" + (f"\n# {notice}" if notice else "")


def _describe(entry: operators.Listed) -> dict[str, Any]:
    return {
        "tenant": entry.key.tenant_id,
        "tz": entry.key.tz_name,
        "date": entry.key.day.isoformat(),
        "ttl": None if entry.ttl is None else round(entry.ttl, 1),
        "current": entry.current,
        "key": str(entry.key),
    }


def tenants_named(tenant: str | None):
    return [get_tenant(tenant)] if tenant else list_tenants()


def warm_one(tenant_id: str) -> str:
    return stats_answer.get_stats(tenant_id).outcome.value


def init_app(app) -> None:
    @app.shell_context_processor
    def _shell_context() -> dict[str, Any]:
        if notice := own_cache_notice("stats (and cache) here see"):
            click.echo(f"# {notice}", err=True)
        # A function typed in the shell takes its ``__module__`` from this namespace, and
        # ``@cache.memoize`` names its keys after it: without a ``__name__`` it fails.
        return {"__name__": "__console__", "db": db, "cache": cache, "stats": StatsShell(),
                **{name: getattr(models, name) for name in models.__all__}}
