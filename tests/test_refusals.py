"""Settings the app refuses stop the process in plain words.

gunicorn exits at once in one line, instead of forking workers that refuse, forever; a reload
(HUP) with a refused setting leaves the running server serving; every ``flask`` command, and
``flask --help``, prints the refusal as one line without a traceback. A database that cannot be
reached, or was never migrated, stops the ``flask`` commands (which need it), never the server
(which serves its cache, and answers 503 naming the fix).

Every process here gets a private instance folder and a fresh environment, so neither a
developer's ``instance/config.py`` nor their ``ALIGNWORK_*`` variables leak in. The processes
that are expected to stop (most of them) are a second of imports each: the module starts them
all side by side once (``stopped``), and each test judges its own.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest
from gunicorn.arbiter import Arbiter
from sqlalchemy.engine import make_url

from alignwork import create_app
from alignwork.auth import issue_token
from tests.conftest import PG_URL, require_postgres
from tests.ports import free_port
from tests.test_gunicorn import GUNICORN, ROOT

pytestmark = pytest.mark.slow

FLASK = [sys.executable, "-m", "flask"]
KEY = "k" * 48
# A command that migrates, one of a group that reads the database, one that does not, the help.
FLASK_COMMANDS = ["db upgrade", "tenants list", "cache stats", "--help"]

# Each refused setting, and the words its one line must hold.
REFUSED = {
    "production without SECRET_KEY": ({"ALIGNWORK_ENV": "production"},
                                      "SECRET_KEY must be set to at least 32 bytes in production"),
    "CACHE_TYPE typo": ({"ALIGNWORK_CACHE_TYPE": "Redis"},
                        "CACHE_TYPE must be one of NullCache, SimpleCache, RedisCache"),
    "CACHE_TYPE null": ({"ALIGNWORK_CACHE_TYPE": "null"},
                        "CACHE_TYPE is empty (null); use one of NullCache, SimpleCache"),
    "CORS_ORIGINS not a list": ({"ALIGNWORK_CORS_ORIGINS": "https://dashboard.example.com"},
                                "CORS_ORIGINS must be a list of origins"),
    "DATABASE_URL unparseable": ({"DATABASE_URL": "garbage"},
                                 "DATABASE_URL is not a database URL: 'garbage'"),
    "database driver missing": ({"DATABASE_URL": "mysql://clinic:hunter2@db.example/alignwork"},
                                "DATABASE_URL (mysql://clinic:***@db.example/alignwork) needs the "
                                "mysql+mysqldb driver, which is not installed"),
}
# Refused by gunicorn only: the flask commands run one process each.
SEVERAL_WORKERS = ({"ALIGNWORK_ENV": "production", "ALIGNWORK_SECRET_KEY": KEY,
                    "ALIGNWORK_CACHE_TYPE": "SimpleCache"},
                   "CACHE_TYPE SimpleCache is a per-process cache with 2 workers")

# Database settings that stop the flask commands: (variable, URL, words of the one line).
MISSING_DATABASE = f"no_such_db_{uuid.uuid4().hex[:8]}"
DATABASE_REFUSALS = {
    "unparseable": ("DATABASE_URL", "garbage", ["Error: DATABASE_URL is not a database URL"]),
    "unparseable (ALIGNWORK_)": ("ALIGNWORK_SQLALCHEMY_DATABASE_URI", "not a url",
                                 ["Error: SQLALCHEMY_DATABASE_URI is not a database URL: 'not a url'"]),
    "driver missing": ("DATABASE_URL", "mysql://clinic:hunter2@db.example/alignwork",
                       ["Error: DATABASE_URL (mysql://clinic:***@db.example/alignwork) needs the "
                        "mysql+mysqldb driver"]),
    "server down": ("DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:{closed}/test",
                    ["Error: DATABASE_URL: cannot connect to "
                     "postgresql://postgres:***@127.0.0.1:{closed}/test: connection refused"]),
    "database missing": ("DATABASE_URL", make_url(PG_URL).set(database=MISSING_DATABASE)
                         .render_as_string(hide_password=False),
                         ["Error: DATABASE_URL: cannot connect to postgresql://",
                          f'/{MISSING_DATABASE}: database "{MISSING_DATABASE}" does not exist']),
}


# A database never migrated (a fresh instance folder: its SQLite file does not exist either).
NEVER_MIGRATED = ["tenants list", "cache stats", "seed", "shell", "routes"]


def database_commands(case: str) -> list[str]:
    """Every case with ``flask db upgrade``; the server down with a command of the app's too."""
    return ["db upgrade", "tenants list"] if case == "server down" else ["db upgrade"]


class Stopped(NamedTuple):
    status: int | None  # None: still running at the deadline (then killed)
    output: str         # stdout and stderr, interleaved
    seconds: float
    folder: Path        # its instance folder and TMPDIR


def clean_env(folder: Path) -> dict[str, str]:
    """The environment of a fresh shell, with no ALIGNWORK_*, GUNICORN_* or DATABASE_URL from
    the developer's, and an instance folder and TMPDIR of its own in ``folder``."""
    (folder / "tmp").mkdir(parents=True)
    clean = {name: value for name, value in os.environ.items()
             if not name.startswith(("ALIGNWORK_", "GUNICORN_", "PROMETHEUS_")) and name != "DATABASE_URL"}
    return {**clean, "FLASK_APP": "alignwork", "ALIGNWORK_INSTANCE_PATH": str(folder / "instance"),
            "TMPDIR": str(folder / "tmp")}


CLOSED = free_port()  # where "the database server is down"


def gunicorn(port: int, workers: int = 1, config: str = "gunicorn.conf.py") -> list[str]:
    return [str(GUNICORN), "-c", config, "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", "sync",
            "wsgi:app"]


def run(command: list[str], env: dict[str, str], folder: Path, timeout: float) -> Stopped:
    """Run to the end, or kill the process group at ``timeout`` seconds."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        status = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, status = process.communicate()[0], None
    return Stopped(status, output, time.monotonic() - started, folder)


def _processes(tmp: Path) -> dict[str, tuple[list[str], dict[str, str], Path]]:
    """Every process of the tables below, by the name its test looks it up by."""
    table = {}

    def add(name: str, command: list[str], settings: dict[str, str]) -> None:
        folder = tmp / f"p{len(table)}"
        table[name] = (command, {**clean_env(folder), **settings}, folder)

    for case, (settings, _) in [*REFUSED.items(), ("several workers", SEVERAL_WORKERS)]:
        workers = 2 if case == "several workers" else 1
        add(f"gunicorn: {case}", gunicorn(free_port(), workers), settings)
    for case, (settings, _) in REFUSED.items():
        for command in FLASK_COMMANDS:
            add(f"flask {command}: {case}", [*FLASK, *command.split()], settings)
    for case, (variable, url, _) in DATABASE_REFUSALS.items():
        for command in database_commands(case):
            add(f"flask {command}: {case}", [*FLASK, *command.split()], {variable: url.format(closed=CLOSED)})
    for command in [*NEVER_MIGRATED, "--help", "tenants list --help"]:
        add(f"flask {command}: never migrated", [*FLASK, *command.split()], {"ALIGNWORK_SECRET_KEY": KEY})
    return table


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> dict[str, Stopped]:
    """Every process of the tables, run to its end. gunicorn's go two at a time, so that the
    10 seconds they are given are not spent waiting for a processor."""
    table = _processes(tmp_path_factory.mktemp("refusals"))
    results = {}
    for kind, side_by_side in (("gunicorn", 2), ("flask", 4)):
        with ThreadPoolExecutor(max_workers=side_by_side) as pool:
            runs = {name: pool.submit(run, command, env, folder, 30)
                    for name, (command, env, folder) in table.items() if name.startswith(kind)}
            results.update({name: future.result() for name, future in runs.items()})
    return results


def assert_one_line_refusal(result: Stopped, *words: str) -> None:
    """Non-zero, no traceback, at most three lines, one of them holding all of ``words``."""
    lines = result.output.strip().splitlines()
    assert result.status is not None, "still running at the deadline:\n" + result.output[-3000:]
    assert result.status != 0, result.output
    assert "Traceback" not in result.output, result.output
    assert len(lines) <= 3, result.output
    assert [line for line in lines if all(part in line for part in words)], result.output
    assert "hunter2" not in result.output  # the password of the URLs above


# -- gunicorn -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [*REFUSED, "several workers"])
def test_gunicorn_exits_at_once_in_one_line(stopped, case):
    result = stopped[f"gunicorn: {case}"]
    words = {**REFUSED, "several workers": SEVERAL_WORKERS}[case][1]
    assert_one_line_refusal(result, "AlignWork refuses to start: " + words)
    assert result.seconds < 10
    assert list((result.folder / "tmp").iterdir()) == []  # nor leaves the metrics folder it made


def test_a_worker_that_refuses_stops_gunicorn_without_the_config_file(tmp_path):
    """Started without gunicorn.conf.py, nothing refuses before the workers: the worker exits
    with gunicorn's boot error, and gunicorn stops instead of forking it again."""
    (tmp_path / "empty.py").write_text("")
    env = {**clean_env(tmp_path), "ALIGNWORK_CACHE_TYPE": "Redis",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "tmp")}
    result = run(gunicorn(free_port(), config=str(tmp_path / "empty.py")), env, tmp_path, timeout=10)
    assert result.status == Arbiter.WORKER_BOOT_ERROR, result.output
    assert result.output.count("AlignWork refuses to start: CACHE_TYPE must be one of") == 1, result.output
    assert "Traceback" not in result.output


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


class Serving:
    """gunicorn -c gunicorn.conf.py wsgi:app with one sync worker, its output in a file.

    (test_gunicorn.Server also makes a tenant, migrates and issues tokens, with four ``flask``
    processes: more than these tests need, and most of their time.)"""

    def __init__(self, folder: Path, **settings: str):
        self.port, self.log = free_port(), folder / "gunicorn.log"
        self.process = subprocess.Popen(gunicorn(self.port), cwd=ROOT, env={**clean_env(folder), **settings},
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, condition, what: str, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn exited while waiting for {what}:\n{self.output()}"
            try:
                found = condition()
            except OSError:  # not listening yet
                found = None
            if found:
                return found
            time.sleep(0.1)
        pytest.fail(f"no {what} within {timeout} s:\n{self.output()}")

    def worker_answering(self, path: str = "/healthz") -> str:
        """The pid of the worker that answers ``path`` now (from its access log line)."""
        answered = re.compile(r"<(\d+)> \"GET " + re.escape(path) + r" HTTP/1.1\" 200")
        seen = len(answered.findall(self.output()))
        assert get(self.port, path)[0] == 200
        return self.wait_for(lambda: answered.findall(self.output())[seen:], "its access log line")[0]

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.output()


@pytest.fixture
def serving(tmp_path):
    servers: list[Serving] = []

    def start(**settings: str) -> Serving:
        servers.append(Serving(tmp_path, **settings))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_gunicorn_serves_while_the_database_is_down(serving):
    """A database that cannot be reached is no refusal for the server: it starts, and says it
    is not ready."""
    server = serving(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
                     ALIGNWORK_SECRET_KEY=KEY)
    server.wait_for(lambda: get(server.port, "/healthz")[0] == 200, "health answer")
    status, body = get(server.port, "/readyz")
    assert status == 503 and "Database unreachable" in body
    assert server.process.poll() is None
    assert "Traceback" not in server.output()


def test_gunicorn_serves_a_database_never_migrated_with_503s_naming_the_upgrade(serving):
    """It starts (the database is no setting), is not ready, and the API answers in its JSON
    error shape rather than a 500 per request."""
    server = serving(ALIGNWORK_SECRET_KEY=KEY)
    server.wait_for(lambda: get(server.port, "/healthz")[0] == 200, "health answer")
    status, body = get(server.port, "/readyz")
    assert status == 503 and "never been migrated" in body and "run `flask db upgrade`" in body
    with create_app({"SECRET_KEY": KEY}).app_context():
        token = issue_token("acme", 60)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/api/v1/appointments/mega-stats", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    assert response.status == 503 and answer["code"] == 503 and "`flask db upgrade`" in answer["message"]
    assert server.process.poll() is None
    assert "Traceback" not in server.stop()


def test_a_reload_with_a_refused_setting_keeps_the_server_serving(serving, tmp_path):
    """HUP re-reads instance/config.py. Refused, the reload changes nothing: the running worker
    keeps serving (the same process), and the next HUP, with the setting fixed, replaces it."""
    database = {"ALIGNWORK_SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/served.sqlite"}
    migrated = run([*FLASK, "db", "upgrade"], {**clean_env(tmp_path / "migrate"), **database}, tmp_path, 60)
    assert migrated.status == 0, migrated.output
    server = serving(**database, ALIGNWORK_SECRET_KEY=KEY, GUNICORN_GRACEFUL_TIMEOUT="1")
    server.wait_for(lambda: get(server.port, "/readyz")[0] == 200, "readiness")
    worker = server.worker_answering()

    settings = tmp_path / "instance" / "config.py"
    settings.write_text('CACHE_TYPE = "Redis"  # a typo\n')
    server.process.send_signal(signal.SIGHUP)
    server.wait_for(lambda: "refuses the reloaded settings" in server.output(), "refusal in the log")
    for _ in range(3):  # during the master's wait after the reload (graceful_timeout), and after it
        assert get(server.port, "/readyz")[0] == 200
        assert server.worker_answering() == worker
        time.sleep(0.6)
    refusal = [line for line in server.output().splitlines() if "refuses the reloaded settings" in line]
    assert len(refusal) == 1 and "CACHE_TYPE must be one of" in refusal[0]
    assert "takes no reload (HUP) for the next 1 s (graceful_timeout" in refusal[0]  # its own, not 20

    settings.write_text("")
    server.process.send_signal(signal.SIGHUP)
    server.wait_for(lambda: server.worker_answering() != worker, "a new worker after the fixed reload")
    assert server.process.poll() is None
    assert "Traceback" not in server.stop()


# -- flask --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", FLASK_COMMANDS)
@pytest.mark.parametrize("case", REFUSED)
def test_every_flask_command_refuses_in_one_line(stopped, case, command):
    assert_one_line_refusal(stopped[f"flask {command}: {case}"], "Error: " + REFUSED[case][1])


@pytest.mark.parametrize("case", DATABASE_REFUSALS)
def test_flask_commands_name_the_database_setting_that_cannot_work(stopped, case):
    if case == "database missing":
        require_postgres()
    words = [part.format(closed=CLOSED) for part in DATABASE_REFUSALS[case][2]]
    for command in database_commands(case):
        assert_one_line_refusal(stopped[f"flask {command}: {case}"], *words)


@pytest.mark.parametrize("command", NEVER_MIGRATED)
def test_flask_commands_on_a_database_never_migrated_name_the_upgrade(stopped, command):
    """Every command but ``flask db …``: the app's, Flask's own (shell, routes); and a SQLite
    file that does not exist is not created by asking."""
    result = stopped[f"flask {command}: never migrated"]
    assert_one_line_refusal(result, "Error: the database does not exist yet (sqlite:///",
                            "/alignwork.sqlite); run `flask db upgrade`.")
    assert not (result.folder / "instance" / "alignwork.sqlite").exists()


@pytest.mark.parametrize("command", ["--help", "tenants list --help"])
def test_help_needs_no_migrated_database(stopped, command):
    result = stopped[f"flask {command}: never migrated"]
    assert result.status == 0 and result.output.startswith("Usage: "), result.output
    assert not (result.folder / "instance" / "alignwork.sqlite").exists()


def test_a_bug_keeps_its_traceback(tmp_path):
    """Only what a setting or a missed migration causes is cut short: a statement that fails on
    a database migrated to this release (here: a table dropped by hand) still shows where."""
    env = {**clean_env(tmp_path), "ALIGNWORK_SECRET_KEY": KEY}
    assert run([*FLASK, "db", "upgrade"], env, tmp_path, 60).status == 0
    with sqlite3.connect(tmp_path / "instance" / "alignwork.sqlite") as connection:
        connection.execute("DROP TABLE tenants")
    result = run([*FLASK, "tenants", "list"], env, tmp_path, 60)
    assert result.status not in (0, None)
    assert "Traceback" in result.output and "no such table: tenants" in result.output


# -- the messages that name what they refuse, and code in the API docs -----------------------


def test_the_openapi_document_has_no_restructuredtext_literals(make_app):
    """View docstrings are reStructuredText (``x``); Swagger UI renders Markdown (`x`)."""
    document = make_app().test_client().get("/api/openapi.json").get_data(as_text=True)
    assert "``" not in document
    assert "`tz`" in document  # the summary of mega-stats, converted rather than dropped
