"""The production stack a run starts and stops: gunicorn with ``gunicorn.conf.py``, a Redis of
its own for the outage, a Redis Cluster of its own, and the ``flask`` commands that prepare data.

The benchmark measures the service the way it is deployed (``gunicorn -c gunicorn.conf.py``
serving the production app, plus the floor route: ``bench.wsgi:app``, configured by environment
variables), not an app object in the test client, so what
it reports is what an operator would see. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from tests.ports import free_port

from .commands import CommandLog, clean_environment
from .databases import Database

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CACHE_TYPES = {"simple": "SimpleCache", "redis": "RedisCache", "cluster": "RedisClusterCache"}
#: Long enough that no entry expires in the middle of a measurement; a HIT costs the same.
STATS_TTL = 3600


@dataclass(frozen=True)
class ServerSettings:
    cache: str  # "simple", "redis" or "cluster"
    worker_class: str = "sync"
    workers: int = 4
    threads: int = 4  # gthread only
    redis_url: str | None = None

    @classmethod
    def deployable(cls, cache: str, worker_class: str, workers: int, threads: int) -> ServerSettings:
        """The settings production accepts: a per-process cache cannot be shared by workers, so
        gunicorn refuses SimpleCache with more than one; it then runs one worker."""
        return cls(cache, worker_class, 1 if cache == "simple" else workers, threads)

    @property
    def label(self) -> str:
        shape = f"{self.workers}×{self.threads} threads" if self.worker_class == "gthread" else f"×{self.workers}"
        return f"{CACHE_TYPES[self.cache]}, {self.worker_class} {shape}"


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's children."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (entry / "stat").read_text()
                    # The command name is in parentheses and may hold spaces: split after it.
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                        pids.append(int(entry.name))
        return sorted(pids)

    def cpu_seconds(self) -> float:
        """User and system CPU time of the master and its workers so far, from ``/proc/<pid>/stat``."""
        ticks = 0
        for pid in (self.process.pid, *self.worker_pids()):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def pss_kib(self) -> dict[int, int]:
        """Proportional set size of each worker (its share of pages shared with the master and
        the other workers), from ``/proc/<pid>/smaps_rollup``."""
        sizes = {}
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        sizes[pid] = int(line.split()[1])
        return sizes

    def rss_mib(self) -> dict[int, float]:
        """Resident memory of each worker, from ``/proc/<pid>/status``."""
        sizes = {}
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[pid] = int(line.split()[1]) / 1024
        return sizes


@dataclass
class RedisServer:
    """A Redis only this run uses, so stopping it harms nobody. No persistence: a restart
    comes back empty, as a replaced cache node would."""

    port: int
    log: CommandLog
    process: subprocess.Popen | None = None
    extra: tuple[str, ...] = ()  # more redis-server options

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *self.extra]
        self.log.record(args)
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda: _redis_answers(self.port), 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


class Stack:
    """One run's shared pieces: the signing key, the data, the command log, the cache prefix."""

    def __init__(self, run_dir: Path, log: CommandLog, redis_url: str):
        self.run_dir = run_dir
        self.log = log
        self.redis_url = redis_url
        self.cluster_nodes: str | None = None  # CACHE_REDIS_CLUSTER, once own_cluster() runs
        self.secret_key = secrets.token_urlsafe(48)
        self.key_prefix = f"bench-{secrets.token_hex(5)}:"
        self._apps: dict[str, Flask] = {}
        log.hide(self.secret_key, "$SECRET_KEY")
        log.hide(str(run_dir), "$RUN_DIR")
        log.hide(str(BIN) + "/", "")
        log.hide(str(Path(__file__).parent) + "/", "bench/")
        log.hide(self.key_prefix, "bench-$RUN:")
        self.common_env = {
            "ALIGNWORK_ENV": "production", "ALIGNWORK_SECRET_KEY": self.secret_key,
            "ALIGNWORK_CACHE_KEY_PREFIX": self.key_prefix,
            "ALIGNWORK_CACHE_DEFAULT_TIMEOUT": str(STATS_TTL),
        }
        # No access log: it costs the same on every route and is not what is measured.
        self.server_env = {"GUNICORN_ACCESS_LOG": "", "GUNICORN_LOG_LEVEL": "warning"}
        log.common({**self.common_env, **self.server_env})

    def app_env(self, database: Database, cache: str = "simple", redis_url: str | None = None) -> dict[str, str]:
        """The ALIGNWORK_* variables of a production deployment on ``database``."""
        env = {
            **self.common_env,
            "ALIGNWORK_SQLALCHEMY_DATABASE_URI": database.url,
            "ALIGNWORK_CACHE_TYPE": CACHE_TYPES[cache],
        }
        if cache == "redis":
            env["ALIGNWORK_CACHE_REDIS_URL"] = redis_url or self.redis_url
        elif cache == "cluster":
            env["ALIGNWORK_CACHE_REDIS_CLUSTER"] = self.cluster_nodes
        return env

    def flask(self, database: Database, *args: str, timeout: float = 900) -> str:
        """Run ``flask --app alignwork ARGS`` against ``database``; its standard output."""
        out = self.log.run([BIN / "flask", "--app", "alignwork", *args], self.app_env(database), ROOT, timeout)
        return out.stdout

    def migrate(self, database: Database) -> None:
        self.flask(database, "db", "upgrade")

    def seed(self, database: Database, tenant: str, appointments: int, seed: int = 1) -> None:
        if database.seeded.get(tenant) == appointments:
            return
        self.flask(database, "seed", "--tenant", tenant, "--appointments", str(appointments), "--seed", str(seed))
        database.seeded[tenant] = appointments

    def token(self, database: Database, tenant: str | None = None) -> str:
        """A bearer token from ``flask tenants token`` (an admin one without a tenant)."""
        args = ["tenants", "token", tenant] if tenant else ["tenants", "token", "--admin"]
        token = self.flask(database, *args).strip().splitlines()[-1]
        self.log.hide(token, "$ADMIN_TOKEN" if tenant is None else "$TOKEN")
        return token

    def app(self, database: Database) -> Flask:
        """The app in this process, on ``database``: for calling services directly."""
        if database.url not in self._apps:
            from alignwork import create_app

            self._apps[database.url] = create_app({
                "SQLALCHEMY_DATABASE_URI": database.url, "SECRET_KEY": self.secret_key,
                "CACHE_TYPE": "SimpleCache", "CACHE_KEY_PREFIX": self.key_prefix,
            })
        return self._apps[database.url]

    def close_apps(self) -> None:
        from alignwork.extensions import db

        for app in self._apps.values():
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        self._apps.clear()

    @contextlib.contextmanager
    def server(self, database: Database, settings: ServerSettings, wsgi: str = "bench.wsgi:app",
               env: dict[str, str] | None = None) -> Iterator[Server]:
        """gunicorn serving the app (or another ``wsgi`` callable, e.g. ``bench.bare:app``) on a
        free loopback port until the block ends; ``env`` adds or overrides settings."""
        port = free_port()
        extra = env or {}
        env = {
            **self.app_env(database, settings.cache, settings.redis_url),
            "GUNICORN_WORKER_CLASS": settings.worker_class,
            "GUNICORN_THREADS": str(settings.threads if settings.worker_class == "gthread" else 1),
            **self.server_env,
            # Each server's workers share their metrics here, and only here.
            "PROMETHEUS_MULTIPROC_DIR": str(self.run_dir / f"metrics-{port}"),
            **extra,
        }
        args = [BIN / "gunicorn", "-c", "gunicorn.conf.py", "-w", str(settings.workers),
                "-b", f"127.0.0.1:{port}", wsgi]
        self.log.hide(f"127.0.0.1:{port}", "127.0.0.1:$PORT")
        self.log.hide(f"metrics-{port}", "metrics-$PORT")
        self.log.record(args, env)
        with open(self.run_dir / "gunicorn.log", "ab") as errors:
            process = subprocess.Popen(
                [str(a) for a in args], env={**clean_environment(), **env}, cwd=ROOT,
                stdout=errors, stderr=errors, start_new_session=True,
            )
        server = Server(f"http://127.0.0.1:{port}", process)
        try:
            _wait_for(lambda: _answers(server.url + "/healthz") and len(server.worker_pids()) >= settings.workers,
                      60, f"gunicorn ({settings.label})", process)
            yield server
        finally:
            _stop(server)

    @contextlib.contextmanager
    def own_redis(self) -> Iterator[RedisServer]:
        server = RedisServer(free_port(), self.log)
        self.log.hide(f"--port {server.port}", "--port $REDIS_PORT")
        self.log.hide(f"127.0.0.1:{server.port}", "127.0.0.1:$REDIS_PORT")
        server.start()
        try:
            yield server
        finally:
            server.stop()


    @contextlib.contextmanager
    def own_cluster(self, size: int = 3) -> Iterator[str]:
        """A Redis Cluster of ``size`` primaries (no replicas) for this run: its
        ``CACHE_REDIS_CLUSTER``. Each node keeps its cluster state in its own folder."""
        nodes = []
        try:
            for index in range(size):
                folder = self.run_dir / f"cluster-{index}"
                folder.mkdir()
                port = free_port(bus=True)
                self.log.hide(f"--port {port}", f"--port $CLUSTER_PORT_{index}")
                self.log.hide(f"127.0.0.1:{port}", f"127.0.0.1:$CLUSTER_PORT_{index}")
                node = RedisServer(port, self.log, extra=(
                    "--cluster-enabled", "yes", "--cluster-node-timeout", "2000", "--dir", str(folder)))
                nodes.append(node)
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in nodes]
            self.log.run([shutil.which("redis-cli") or "redis-cli", "--cluster", "create", *addresses,
                          "--cluster-replicas", "0", "--cluster-yes"], {}, ROOT, 60)
            _wait_for(lambda: all(_cluster_ok(node.port) for node in nodes), 30, "the Redis Cluster")
            self.cluster_nodes = ",".join(addresses)
            yield self.cluster_nodes
        finally:
            self.cluster_nodes = None
            for node in nodes:
                node.stop()


def _stop(server: Server) -> None:
    """Quick shutdown of the master (SIGINT), then kill whatever is left of its group."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _cluster_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"CLUSTER INFO\r\n")
            return b"cluster_state:ok" in sock.recv(4096)
    except OSError:
        return False


def _wait_for(ready, seconds: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {seconds:.0f} s")
