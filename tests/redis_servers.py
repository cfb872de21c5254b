"""Throwaway Redis servers for tests: one server, a master with a replica and sentinels, a cluster.

Each is started from the ``redis-server`` binary on free loopback ports, so a test can stop,
pause or kill it without touching the shared Redis. Without the binary (or ``redis-cli`` for a
cluster) the test is skipped with the reason, or fails under ``ALIGNWORK_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.conftest import service_missing
from tests.ports import free_port

MASTER_NAME = "alignwork"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        service_missing(f"{name} binary not found; this test starts its own Redis servers")
    return path


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {seconds:.0f} s")
        time.sleep(0.05)


class RedisServer:
    """A redis-server on a free loopback port; ``args`` are extra command-line options."""

    def __init__(self, directory: Path, *args: str, port: int | None = None, password: str | None = None,
                 sentinel: bool = False, persist: bool = False):
        self.binary = _binary("redis-server")
        self.dir = Path(directory)
        self.port = port or free_port(bus="--cluster-enabled" in args)
        self.password = password
        self.sentinel = sentinel
        # Persisting: every write to the append-only file before it is acknowledged.
        self.persistence = ["--appendonly", "yes", "--appendfsync", "always"] if persist else ["--appendonly", "no"]
        self.args = list(args)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, db: int = 0, **kwargs) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, password=self.password, socket_connect_timeout=1,
                           socket_timeout=5, **kwargs)

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(self._command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        wait_for(self._answers, 10, f"redis-server did not answer on port {self.port}")
        self.process.stderr.close()  # it logs to stdout; stderr only speaks when it cannot start
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} exited with code {self.process.returncode}: "
                               f"{self.process.stderr.read().strip()[-500:]}")
        return self.client().ping()

    def _command(self) -> list[str]:
        command = [self.binary]
        if self.sentinel:
            config = self.dir / f"sentinel-{self.port}.conf"
            config.write_text("\n".join(self.args) + "\n")
            command += [str(config), "--sentinel"]
        else:
            command += ["--save", "", *self.persistence, *self.args]
            if self.password:
                command += ["--requirepass", self.password]
        command += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        return command

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """Gone at once, without a goodbye: the way a machine fails."""
        self.process.kill()
        self.process.wait(10)

    def pause(self) -> None:
        """Still accepting connections, never answering: the slow kind of outage."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


class SentinelSetup:
    """A master, one replica and three sentinels (quorum 2) watching it as ``MASTER_NAME``,
    tuned to fail over within seconds."""

    def __init__(self, directory: Path, down_after_ms: int = 1000, failover_timeout_ms: int = 3000):
        self.master = RedisServer(directory)
        self.replica = RedisServer(directory, "--replicaof", "127.0.0.1", str(self.master.port))
        self.sentinels = []
        for _ in range(3):
            sentinel = RedisServer(directory, sentinel=True)
            sentinel.args = [f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2",
                             f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
                             f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}",
                             f"sentinel parallel-syncs {MASTER_NAME} 1"]
            self.sentinels.append(sentinel)

    @property
    def addresses(self) -> list[list]:
        return [["127.0.0.1", s.port] for s in self.sentinels]

    def start(self) -> SentinelSetup:
        self.master.start()
        self.replica.start()
        wait_for(lambda: self.replica.client().info("replication")["master_link_status"] == "up", 20,
                 "the replica did not sync")
        for sentinel in self.sentinels:
            sentinel.start()
        # Failover needs a majority of sentinels that know each other and the replica.
        wait_for(lambda: all(self._sees_everyone(s) for s in self.sentinels), 30,
                 "the sentinels did not discover each other and the replica")
        return self

    def _sees_everyone(self, sentinel: RedisServer) -> bool:
        state = sentinel.client().sentinel_master(MASTER_NAME)
        return state["num-other-sentinels"] == 2 and state["num-slaves"] == 1

    def master_port(self) -> int:
        host, port = self.sentinels[0].client().sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.stop()


class Cluster:
    """``size`` primaries, each with ``replicas`` replicas, slots spread by ``redis-cli --cluster
    create``. ``full_coverage=False`` sets ``cluster-require-full-coverage no``, as docs/deploy.md
    recommends for this cache."""

    def __init__(self, directory: Path, size: int = 3, replicas: int = 0, full_coverage: bool = True):
        cli = _binary("redis-cli")
        self.cli = cli
        self.replicas = replicas
        self.nodes = []
        coverage = [] if full_coverage else ["--cluster-require-full-coverage", "no"]
        for index in range(size * (1 + replicas)):
            node_dir = Path(directory) / f"node-{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.nodes.append(RedisServer(node_dir, "--cluster-enabled", "yes", "--cluster-config-file",
                                          "nodes.conf", "--cluster-node-timeout", "2000", *coverage))

    @property
    def startup_nodes(self) -> str:
        """``CACHE_REDIS_CLUSTER``: host:port,host:port,…"""
        return ",".join(node.address for node in self.nodes)

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        subprocess.run([self.cli, "--cluster", "create", *(n.address for n in self.nodes),
                        "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        wait_for(lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in self.nodes), 30,
                 "the cluster did not reach state ok")
        if self.replicas:
            wait_for(lambda: all(n.client().info("replication").get("master_link_status", "up") == "up"
                                 for n in self.nodes), 30, "the replicas did not sync")
        return self

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port)

    def node_of(self, key: str) -> RedisServer:
        """The node serving ``key``'s slot now."""
        node = self.client().get_node_from_key(key)
        return next(n for n in self.nodes if n.port == node.port)

    def replicas_of(self, primary: RedisServer) -> list[RedisServer]:
        return [n for n in self.nodes if n.process and n.process.poll() is None and n is not primary
                and n.client().info("replication").get("master_port") == primary.port]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
