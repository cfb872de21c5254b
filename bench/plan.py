"""What a run measures and for how long: the full plan, the quick one, and the command line.

The full plan is sized to finish in about a quarter of an hour on a 2-core machine; ``--quick``
keeps every step but shrinks sizes and durations to seconds, so a test can run the whole harness
and notice when it breaks.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

SCENARIOS = ("hit", "miss", "stampede", "outage", "growth", "profile", "fleet", "latency", "midnight",
             "listener", "streams")
DATABASES = ("sqlite", "postgresql")
CACHES = ("simple", "redis", "cluster")  # cluster: RedisClusterCache on three private primaries
WORKER_CLASSES = ("gevent", "sync", "gthread")  # gevent: the shipped default


@dataclass(frozen=True)
class Plan:
    quick: bool = False
    scenarios: tuple[str, ...] = SCENARIOS
    databases: tuple[str, ...] = DATABASES  # MISS at scale runs on each
    caches: tuple[str, ...] = CACHES
    worker_classes: tuple[str, ...] = WORKER_CLASSES
    workers: int = 4
    threads: int = 4  # per gthread worker
    connections: int = 16  # wrk connections
    run_seconds: int = 5  # one wrk measurement
    repeats: int = 3  # A/B pairs
    warmup_seconds: int = 3  # 0: no separate warm-up run
    clinic_appointments: int = 100_000  # the tenant the HTTP scenarios read
    miss_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    miss_repeats: int = 40  # timed computations per size, at most ...
    miss_seconds: float = 10.0  # ... and for at most this long (at least 5 of them)
    stampede_requests: int = 200
    stampede_rounds: int = 3
    outage_seconds: int = 10  # each of before, during and after
    growth_tenants: int = 1000
    growth_zones: int = 10  # zones per tenant in each of the two growth phases
    fleet_tenants: int = 100  # 60 % with one open dashboard, 30 % with two, 10 % with five
    fleet_workers: int = 3
    fleet_interval: float = 30.0  # seconds between a dashboard's polls ...
    fleet_jitter: float = 3.0  # ... give or take this
    fleet_read_seconds: int = 60  # measured without writes, after a warm-up round
    fleet_write_seconds: int = 90  # with writes, then one more interval of polling
    fleet_write_every: int = 300  # seconds between writes of one tenant, on average
    midnight_tenants: int = 200  # per app, in the midnight scenario (two apps side by side)
    ratio_tenants: tuple[int, int] = (10, 1000)  # the same poll load spread over few and many
    ratio_rate: float = 20.0  # polls per second
    ratio_seconds: int = 15  # per measurement; ``repeats`` alternated pairs
    listener_sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)  # tenants, scenario 10
    listener_seconds: float = 90.0  # of idle ticking per size: the listener's periodic work included
    streams_tenants: int = 500  # scenario 11's capacity: this many tenants ...
    streams_per_tenant: int = 10  # ... with this many streams each (5,000; STREAMS_PER_TENANT is 20)
    streams_latency_tenants: int = 100  # its latency: 1,000 streams
    streams_writes: int = 30  # of each kind, API and psql, one tenant each
    streams_idle_seconds: float = 20.0  # the idle CPU window: at least one keep-alive (15 s)
    streams_quiet: int = 20  # streams of the short-lived variant, reconnecting ...
    streams_quiet_lifetime: int = 5  # ... with this STREAM_MAX_SECONDS ...
    streams_quiet_seconds: float = 15.0  # ... for this long
    redis_url: str = "redis://127.0.0.1:6379/0"
    postgres_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    output: str = ""

    @property
    def server_database(self) -> str:
        """The database behind gunicorn: PostgreSQL, as in production, when it is measured."""
        return "postgresql" if "postgresql" in self.databases else "sqlite"


QUICK = dict(
    quick=True, workers=2, threads=2, connections=4, run_seconds=1, repeats=1, warmup_seconds=0,
    clinic_appointments=500, miss_sizes=(100, 1000), miss_repeats=3, miss_seconds=1.0,
    stampede_requests=20, stampede_rounds=1, outage_seconds=1, growth_tenants=10, growth_zones=3,
    fleet_tenants=10, fleet_interval=1.0, fleet_jitter=0.2, fleet_read_seconds=2, fleet_write_seconds=3,
    fleet_write_every=6, ratio_tenants=(3, 30), ratio_seconds=1, listener_sizes=(100, 1000),
    listener_seconds=1.5, streams_tenants=5, streams_latency_tenants=5, streams_writes=3,
    streams_idle_seconds=1.5, streams_quiet=5, streams_quiet_lifetime=1, streams_quiet_seconds=5.0,
    worker_classes=("gevent",),
)


def parse_args(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the mega-stats cache against a floor route, the miss path at scale, "
                    "a stampede, a Redis outage, memory growth, a fleet of polling dashboards and "
                    "live dashboards' streams; "
                    "print one table and write "
                    "bench/RESULTS.md.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and one-second runs, to check the harness works")
    parser.add_argument("--only", type=_choices(SCENARIOS), help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument("--database", choices=(*DATABASES, "both"), default="both",
                        help="databases for the MISS scenario; the HTTP scenarios use PostgreSQL "
                             "when it is included, else SQLite (default: both)")
    parser.add_argument("--cache", type=_caches, default="all",
                        help="comma-separated cache backends for the HTTP scenarios: "
                             f"{','.join(CACHES)}; both is simple,redis (default: all of them)")
    parser.add_argument("--listener-sizes", type=lambda text: tuple(int(n) for n in text.split(",")),
                        help="tenant counts of the listener-at-rest scenario (default: 1000,10000,100000,1000000)")
    parser.add_argument("--worker-class", choices=(*WORKER_CLASSES, "both"),
                        help="gunicorn worker classes for the HIT scenario (default and both: all of them; gevent, the shipped one, with --quick)")
    parser.add_argument("--sizes", type=_sizes, help="appointments per tenant for MISS, e.g. 10k,100k,1m")
    parser.add_argument("--seconds", type=int, help="length of each wrk measurement")
    parser.add_argument("--repeats", type=int, help="A/B pairs in the HIT scenario")
    parser.add_argument("--workers", type=int, help="gunicorn workers")
    parser.add_argument("--redis-url", default=Plan.redis_url,
                        help="the shared Redis for RedisCache runs (a unique key prefix is used)")
    parser.add_argument("--postgres-url", default=Plan.postgres_url,
                        help="a PostgreSQL database to connect to; a scratch database is created beside it")
    parser.add_argument("--output", help="where to write the results (default: bench/RESULTS.md)")
    args = parser.parse_args(argv)

    plan = Plan(**QUICK) if args.quick else Plan()
    changes: dict = {"redis_url": args.redis_url, "postgres_url": args.postgres_url, "output": args.output or ""}
    if args.only:
        changes["scenarios"] = args.only
    if args.database != "both":
        changes["databases"] = (args.database,)
    changes["caches"] = _caches(args.cache) if isinstance(args.cache, str) else args.cache
    if args.listener_sizes:
        changes["listener_sizes"] = args.listener_sizes
    if args.worker_class:
        changes["worker_classes"] = WORKER_CLASSES if args.worker_class == "both" else (args.worker_class,)
    for name, value in (("miss_sizes", args.sizes), ("run_seconds", args.seconds),
                        ("repeats", args.repeats), ("workers", args.workers)):
        if value is not None:
            changes[name] = value
    return dataclasses.replace(plan, **changes)


def _choices(allowed: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(part.strip() for part in text.split(",") if part.strip())
        unknown = [c for c in chosen if c not in allowed]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return chosen
    return parse


def _caches(text: str) -> tuple[str, ...]:
    aliases = {"all": CACHES, "both": ("simple", "redis")}
    return aliases.get(text) or _choices(CACHES)(text)


def _sizes(text: str) -> tuple[int, ...]:
    factors = {"k": 1_000, "m": 1_000_000}
    sizes = []
    for part in text.lower().split(","):
        part = part.strip()
        try:
            sizes.append(int(float(part[:-1]) * factors[part[-1]]) if part[-1:] in factors else int(part))
        except (ValueError, IndexError):
            raise argparse.ArgumentTypeError(f"{part!r} is not a size such as 10000, 10k or 1m") from None
    return tuple(sizes)


def size_label(count: int) -> str:
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1_000 and count % 1_000 == 0:
        return f"{count // 1_000}k"
    return str(count)
