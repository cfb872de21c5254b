"""The README's two commands in its order: ``make run`` then ``make test``, in the same folder.

``make run`` leaves ``instance/config.py`` (a SECRET_KEY) and ``instance/alignwork.sqlite``
behind. This test does the same in a copy of the project, with the Makefile's own rule and the
same ``flask`` commands, then runs the configuration tests there as ``make test`` would: they
must not see that key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from alignwork import INSTANCE_PATH_VARIABLE
from tests.ports import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["alignwork", "tests", "Makefile", "pyproject.toml", "wsgi.py", "gunicorn.conf.py",
                 "requirements.txt", "requirements-dev.txt"]
CONFIG_TESTS = [
    "tests/test_config.py",
    "tests/test_auth.py::test_production_refuses_unsafe_config",
    "tests/test_auth.py::test_development_generates_a_key_and_warns",
]


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "alignwork-copy"
    project.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / name)
    return project


def developer_env() -> dict[str, str]:
    """As a developer's shell has it: no private instance folder from this test session, and
    no make of its own around it (``make test`` passes MAKELEVEL and MAKEFLAGS down, and a make
    inside another prints "Entering directory" lines a developer's never does)."""
    env = {name: value for name, value in os.environ.items()
           if name != INSTANCE_PATH_VARIABLE and not name.startswith("PYTEST_")
           and name not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    env["FLASK_APP"] = "alignwork"
    return env


def test_make_run_then_make_test_in_the_same_folder(tmp_path):
    if shutil.which("make") is None:
        pytest.fail("make is needed to follow the README", pytrace=False)
    project = copy_project(tmp_path)
    env = developer_env()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=300)

    # make run, up to serving: the key, the database, the demo tenant.
    made = run("make", "instance/config.py", f"PYTHON={sys.executable}")
    assert made.returncode == 0, made.stderr
    flask = [sys.executable, "-m", "flask"]
    assert run(*flask, "db", "upgrade").returncode == 0
    assert run(*flask, "seed", "--tenant", "demo", "--name", "Clínica Boa Vista", "--appointments", "20",
               "--if-empty").returncode == 0
    key_file = project / "instance" / "config.py"
    assert "SECRET_KEY = " in key_file.read_text()
    assert (project / "instance" / "alignwork.sqlite").exists()

    # make test, in the same folder.
    tested = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CONFIG_TESTS)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert " passed" in tested.stdout and "failed" not in tested.stdout
    assert "SECRET_KEY = " in key_file.read_text()  # and the developer's key is still there


def test_the_readme_says_how_to_serve_on_another_port_and_make_run_obeys():
    readme = (ROOT / "README.md").read_text()
    assert "make run PORT=" in readme and "make run HOST=" in readme
    planned = subprocess.run(["make", "-n", "run", "PORT=8123", "HOST=0.0.0.0"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert "-b 0.0.0.0:8123" in planned.stdout and "http://0.0.0.0:8123" in planned.stdout


# -- make run, served: its banner, its links, and a busy port -----------------------------------

def make_run(project: Path, port: int, log: Path) -> subprocess.Popen:
    """``make run`` in ``project`` with this interpreter's virtualenv, which it must not touch:
    ``-o`` keeps make from reinstalling into it."""
    venv = Path(sys.prefix)
    return subprocess.Popen(
        ["make", "run", f"PORT={port}", f"VENV={venv}", f"PYTHON={sys.executable}", "DEMO_APPOINTMENTS=50",
         "-o", f"{venv}/.installed", "-o", f"{venv}/bin/python"],
        cwd=project, env=_without_settings(developer_env()), stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def _without_settings(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if not name.startswith(("ALIGNWORK_", "GUNICORN_"))
            and name not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")}


def fetch(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def test_make_run_prints_an_admin_token_and_the_operator_page_of_a_named_clinic(tmp_path):
    if shutil.which("make") is None:
        pytest.fail("make is needed to follow the README", pytrace=False)
    project, port, log = copy_project(tmp_path), free_port(), tmp_path / "make-run.log"
    served = make_run(project, port, log)
    try:
        deadline = time.monotonic() + 120
        while "Listening at" not in log.read_text():
            assert served.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        banner = log.read_text()
        base = f"http://127.0.0.1:{port}"
        tenant = re.search(re.escape(base) + r"/#token=(\S+)", banner).group(1)
        admin = re.search(re.escape(base) + r"/ops#token=(\S+)", banner).group(1)
        assert f"  {admin}\n" in banner  # the admin token on a line of its own, as the tenant's
        assert fetch(f"{base}/ops")[0] == 200
        status, body = fetch(f"{base}/api/v1/appointments/cache-metrics", admin)
        assert status == 200 and "hit_rate" in json.loads(body)
        status, body = fetch(f"{base}/api/v1/tenant", tenant)
        assert json.loads(body)["name"] == "Clínica Boa Vista"  # what the dashboard heads its page with
    finally:
        if served.poll() is None:
            os.killpg(served.pid, signal.SIGTERM)
            served.wait(30)


def test_make_run_on_a_busy_port_stops_in_one_line_before_the_banner(tmp_path):
    """Found before anything else: no banner, no tokens, no database, no key written."""
    if shutil.which("make") is None:
        pytest.fail("make is needed to follow the README", pytrace=False)
    project, log = copy_project(tmp_path), tmp_path / "make-run.log"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        made = make_run(project, port, log)
        assert made.wait(60) != 0
    lines = log.read_text().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"make run: cannot listen on 127.0.0.1:{port}" in lines[0] and "Address already in use" in lines[0]
    assert not (project / "instance" / "config.py").exists()
