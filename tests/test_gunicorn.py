"""A real gunicorn with several workers: shared Redis HITs, cross-worker invalidation, metrics
summed over workers, the warning when workers do not share a cache, and the metrics folder."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from tests.conftest import REDIS_URL, require_redis
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def zone_far_from_midnight() -> str:
    """A zone where it is about noon now. The processes under test cannot have their clocks
    moved, so the tenant lives where no test, however slow, crosses local midnight (at which its
    cached entries would roll over and a HIT become a MISS)."""
    offset = 12 - datetime.now(timezone.utc).hour  # hours east of UTC, -11 to +12
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


_running: list[Server] = []


@pytest.fixture(autouse=True)
def _no_server_outlives_its_test():
    """A test that fails before stopping its server must not leave it running."""
    yield
    while _running:
        _running.pop().stop()


class Server:
    """gunicorn -c gunicorn.conf.py wsgi:app on a free port, with its own SQLite database.
    Stopped after the test if the test did not stop it (tests that import this class from here
    get that by importing ``_no_server_outlives_its_test`` too)."""

    def __init__(self, tmp_path, workers: int | None, cache_env: dict[str, str], wait: bool = True,
                 operator_metrics_dir: bool = True):
        self.port = free_port()
        self.log = tmp_path / "gunicorn.log"
        self.env = {
            **os.environ,
            "FLASK_APP": "alignwork",
            "ALIGNWORK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/gunicorn.sqlite",
            "ALIGNWORK_SECRET_KEY": "g" * 48,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "GUNICORN_ACCESS_LOG": "-",
            **cache_env,
        }
        if not operator_metrics_dir:  # gunicorn.conf.py makes one in the temporary folder
            del self.env["PROMETHEUS_MULTIPROC_DIR"]
            self.env["TMPDIR"] = str(tmp_path / "tmp")
            (tmp_path / "tmp").mkdir()
        flask = [sys.executable, "-m", "flask"]
        subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=self.env, check=True, capture_output=True)
        subprocess.run([*flask, "tenants", "create", "acme", "--timezone", zone_far_from_midnight()],
                       cwd=ROOT, env=self.env, check=True, capture_output=True)
        self.token = self._flask_token("acme")
        self.admin = self._flask_token("--admin")
        self.patient = None
        self.process = subprocess.Popen(
            [str(GUNICORN), "-c", "gunicorn.conf.py", *(["-w", str(workers)] if workers else []),
             "-b", f"127.0.0.1:{self.port}", "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )
        _running.append(self)
        if wait:
            self._wait_ready(workers or 1)

    def sign(self, tenant: str) -> str:
        """A token for ``tenant``, signed here with the server's key (no process to start)."""
        from alignwork import create_app
        from alignwork.auth import TENANT, issue_token

        signer = create_app({"SECRET_KEY": self.env["ALIGNWORK_SECRET_KEY"], "SQLALCHEMY_DATABASE_URI": "sqlite://",
                             "CACHE_TYPE": "NullCache"})
        with signer.app_context():
            return issue_token(tenant, 3600, TENANT)

    def _flask_token(self, who: str) -> str:
        result = subprocess.run([sys.executable, "-m", "flask", "tenants", "token", who], cwd=ROOT,
                                env=self.env, check=True, capture_output=True, text=True)
        return result.stdout.strip().splitlines()[-1]

    def _wait_ready(self, workers: int) -> None:
        """Until every worker has answered a health check (one ready worker is not enough)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.concurrently(16, lambda: self.request("GET", "/healthz"))
            except OSError:
                time.sleep(0.1)
                continue
            if len(self.worker_pids(self.log.read_text(), "/healthz")) == workers:
                return
        raise RuntimeError("gunicorn workers did not all start:\n" + self.log.read_text())

    def request(self, method: str, path: str, body=None, token: str | None = None):
        """One request on a new connection, so the workers take turns."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheader("X-Cache"), response.read()
        finally:
            conn.close()

    def stats(self):
        return self.request("GET", "/api/v1/appointments/mega-stats", token=self.token)

    def book(self, patient_id: int) -> int:
        """Book a confirmed appointment five minutes from now; the answer's status."""
        soon = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
        return self.request("POST", "/api/v1/appointments", {
            "patientId": patient_id, "startsAt": soon, "durationMin": 30, "status": "confirmed"},
            self.token)[0]

    def stop(self) -> str:
        if self in _running:
            _running.remove(self)
        self.process.terminate()
        self.process.wait(30)
        return self.log.read_text()

    def worker_pids(self, log: str, path: str) -> set[str]:
        return set(re.findall(r"<(\d+)> \"GET " + re.escape(path), log))

    def concurrently(self, count: int, call) -> list:
        """``count`` calls from 8 threads: a busy sync worker makes the others accept."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda _: call(), range(count)))


@pytest.fixture
def redis_server(tmp_path):
    require_redis()
    prefix = f"alignwork-gunicorn-{uuid.uuid4().hex[:8]}:"
    server = Server(tmp_path, workers=3, cache_env={
        "ALIGNWORK_CACHE_TYPE": "RedisCache", "ALIGNWORK_CACHE_REDIS_URL": REDIS_URL,
        "ALIGNWORK_CACHE_KEY_PREFIX": prefix})
    yield server
    server.stop()
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)


def test_redis_is_shared_by_every_worker(redis_server):
    assert redis_server.stats()[1] == "MISS"
    outcomes = [response[1] for response in redis_server.concurrently(40, redis_server.stats)]
    assert outcomes == ["HIT"] * 40
    log = redis_server.stop()
    assert len(redis_server.worker_pids(log, "/api/v1/appointments/mega-stats")) >= 2, log
    assert re.search(r'"GET /api/v1/appointments/mega-stats HTTP/1.1" 200 \d+ \d+ms cache=HIT', log)


def test_a_write_through_any_worker_invalidates_for_all(redis_server):
    patient = json.loads(redis_server.request("POST", "/api/v1/patients", {"name": "Ana"}, redis_server.token)[2])
    redis_server.stats()
    assert [r[1] for r in redis_server.concurrently(12, redis_server.stats)] == ["HIT"] * 12
    assert redis_server.book(patient["id"]) == 201
    status, outcome, body = redis_server.stats()
    assert outcome == "MISS"
    counts = json.loads(body)
    assert counts["month"]["confirmed"] + counts["nextMonth"]["confirmed"] == 1
    assert [r[1] for r in redis_server.concurrently(12, redis_server.stats)] == ["HIT"] * 12
    log = redis_server.stop()
    assert len(redis_server.worker_pids(log, "/api/v1/appointments/mega-stats")) >= 2


def test_metrics_are_summed_over_workers(redis_server):
    redis_server.stats()
    redis_server.concurrently(29, redis_server.stats)
    status, _, body = redis_server.request("GET", "/api/v1/appointments/cache-metrics", token=redis_server.admin)
    assert status == 200
    metrics = json.loads(body)
    assert (metrics["hits"], metrics["misses"], metrics["total_requests"]) == (29, 1, 30)
    assert metrics["computations"] == 1 and metrics["hit_rate"] == round(29 / 30, 4)
    assert metrics["cache_size"] >= 2  # the entry and the tenant's generation marker
    assert "acme" not in body.decode()
    refused = redis_server.request("GET", "/api/v1/appointments/cache-metrics", token=redis_server.token)
    assert refused[0] == 403 and json.loads(refused[2])["message"] == "This endpoint needs an admin token."

    status, _, text = redis_server.request("GET", "/metrics", token=redis_server.admin)
    text = text.decode()
    assert status == 200
    assert 'alignwork_stats_lookup_seconds_count{outcome="HIT"} 29.0' in text
    assert re.search(r'alignwork_http_requests_total\{endpoint="/api/v1/appointments/mega-stats",'
                     r'method="GET",status="200"\} 30\.0', text)
    assert "alignwork_stats_computation_seconds_bucket" in text
    anonymous = redis_server.request("GET", "/metrics")
    assert anonymous[0] == 401 and json.loads(anonymous[2])["code"] == 401
    log = redis_server.stop()
    assert len(redis_server.worker_pids(log, "/api/v1/appointments/mega-stats")) >= 2


def test_revocation_is_refused_at_once_by_every_worker(redis_server):
    """``flask tenants revoke-tokens`` in another process writes the cut-off through to Redis."""
    assert redis_server.stats()[0] == 200
    assert [r[0] for r in redis_server.concurrently(12, redis_server.stats)] == [200] * 12
    subprocess.run([sys.executable, "-m", "flask", "tenants", "revoke-tokens", "acme"], cwd=ROOT,
                   env=redis_server.env, check=True, capture_output=True)
    answers = redis_server.concurrently(24, redis_server.stats)
    assert [r[0] for r in answers] == [401] * 24
    log = redis_server.stop()
    refusing = set(re.findall(r'<(\d+)> "GET /api/v1/appointments/mega-stats HTTP/1.1" 401', log))
    assert len(refusing) == 3, log  # every worker, not only the one that happened to look


def test_simplecache_with_several_workers_warns_once(tmp_path):
    server = Server(tmp_path, workers=3, cache_env={"ALIGNWORK_CACHE_TYPE": "SimpleCache"})
    server.stats()
    log = server.stop()
    warnings = [line for line in log.splitlines() if "per-process cache with 3 workers" in line]
    assert len(warnings) == 1
    assert "ALIGNWORK_CACHE_TYPE=RedisCache" in warnings[0]


def test_production_refuses_simplecache_with_several_workers(tmp_path):
    server = Server(tmp_path, workers=3, wait=False, cache_env={
        "ALIGNWORK_CACHE_TYPE": "SimpleCache", "ALIGNWORK_ENV": "production"})
    assert server.process.wait(30) != 0
    lines = [line for line in server.log.read_text().splitlines() if "refuses to start" in line]
    assert lines == [lines[0]] and "GUNICORN_WORKERS=1" in lines[0]
    assert "Traceback" not in server.log.read_text()


def test_simplecache_defaults_to_one_worker_with_threads(tmp_path):
    server = Server(tmp_path, workers=None, cache_env={"ALIGNWORK_CACHE_TYPE": "SimpleCache",
                                                       "ALIGNWORK_ENV": "production"})
    server.concurrently(16, server.stats)
    log = server.stop()
    assert len(server.worker_pids(log, "/api/v1/appointments/mega-stats")) == 1
    assert "per-process cache" not in log


def test_gunicorn_removes_the_metrics_folder_it_made_when_it_exits(tmp_path):
    server = Server(tmp_path, workers=2, cache_env={"ALIGNWORK_CACHE_TYPE": "SimpleCache"},
                    operator_metrics_dir=False)
    assert server.stats()[0] == 200
    made = list((tmp_path / "tmp").glob("alignwork-metrics-*"))
    assert len(made) == 1 and list(made[0].iterdir())  # the workers' metric files
    server.stop()
    assert list((tmp_path / "tmp").glob("alignwork-metrics-*")) == []


def test_gunicorn_keeps_the_metrics_folder_the_operator_gave(tmp_path):
    server = Server(tmp_path, workers=1, cache_env={"ALIGNWORK_CACHE_TYPE": "SimpleCache"})
    assert server.stats()[0] == 200
    server.stop()
    given = Path(server.env["PROMETHEUS_MULTIPROC_DIR"])
    assert given.is_dir() and list(given.iterdir())
